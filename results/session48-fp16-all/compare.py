"""Stage 48a against 47b: texts against texts and image embeddings (both move by the float16 rounding only), the
encode cost against images (320,615 caption keys vs 153,888), and what the adapter stores.

    python results/session48-fp16-all/compare.py runs/export-48a
"""
import collections
import sys
import time

import numpy as np
from safetensors import safe_open

import mmembed
from mmembed.data.manifest import read_manifest, resolve_image
from mmembed.registry import adapters_dir

B = "gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-"
NEW = sys.argv[1] if len(sys.argv) > 1 else B + "all-fp16"
new, old = mmembed.load(NEW), mmembed.load(B + "texts52")
texts = ["a red apple", "ein kleiner Hund", "一只猫", "الشمس المشرقة", "गिटार बजाना", "mti mkubwa", "un gatto nero",
         "een zwarte kat", "musta kissa", "črna mačka"]
a, b = new.encode_text(texts), old.encode_text(texts)
print("texts vs texts: max |diff|", float(np.abs(a - b).max()), "min cosine", float((a * b).sum(1).min()))
man = "data/build/emoji/test.jsonl"
imgs = []
for r in read_manifest(man):
    p = resolve_image(man, r)
    if p not in imgs:
        imgs.append(p)
    if len(imgs) == 64:
        break
for role in ("document", "query"):
    a, b = new.encode_image(imgs, role=role), old.encode_image(imgs, role=role)
    print(role, "images: max |diff|", float(np.abs(a - b).max()), "min cosine", float((a * b).sum(1).min()))
caps = [r.caption for r in read_manifest(man) if r.lang == "en"][:256]
for m in (new, old):
    m.encode_text(caps[:8])
    m.encode_text(caps[:8], against="images")
t = {}
for _ in range(3):
    for name, m in (("48a", new), ("47b", old)):
        for against in ("texts", "images"):
            s = time.perf_counter()
            m.encode_text(caps, against=against)
            t.setdefault((name, against), []).append(time.perf_counter() - s)
for k, v in t.items():
    print(k, f"{min(v):.2f} s")
for name in ("48a", "47b"):
    print(name, "ratio images/texts", round(min(t[(name, "images")]) / min(t[(name, "texts")]), 3))
path = adapters_dir() / NEW / "model.safetensors" if "/" not in NEW else f"{NEW}/model.safetensors"
size = collections.Counter()
with safe_open(str(path), "pt") as f:
    for k in f.keys():
        s = f.get_slice(k)
        n = int(np.prod(s.get_shape())) * {"F32": 4, "F16": 2, "I32": 4, "I8": 1, "I64": 8}[s.get_dtype()]
        size[(k.split(".")[0], s.get_dtype())] += n
for k, v in sorted(size.items()):
    print(k, f"{v / 1e6:.2f} MB")
print("total", f"{sum(size.values()) / 1e6:.2f} MB")
