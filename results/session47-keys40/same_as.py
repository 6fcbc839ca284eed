"""One stage against an earlier one: texts against texts bit for bit, image embeddings (within the int8 rounding of
the memory), encode cost against images.

    python results/session47-keys40/same_as.py texts40 texts20     # 47a vs 46b
    python results/session47-keys40/same_as.py texts52 texts40     # 47b vs 47a
"""
import sys
import time
import numpy as np
import mmembed
from mmembed.data.manifest import read_manifest, resolve_image
B = "gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-"
NEW, OLD = sys.argv[1:3]
new, old = mmembed.load(B + NEW), mmembed.load(B + OLD)
texts = ["a red apple", "ein kleiner Hund", "一只猫", "الشمس المشرقة", "गिटार बजाना", "mti mkubwa", "un gatto nero", "een zwarte kat", "musta kissa"]
print("texts vs texts equal:", np.array_equal(new.encode_text(texts), old.encode_text(texts)))
man = "data/build/emoji/test.jsonl"
imgs = []
for r in read_manifest(man):
    p = resolve_image(man, r)
    if p not in imgs: imgs.append(p)
    if len(imgs) == 64: break
for role in ("document", "query"):
    a, b = new.encode_image(imgs, role=role), old.encode_image(imgs, role=role)
    print(role, "images: max |diff|", float(np.abs(a - b).max()), "min cosine", float((a * b).sum(1).min()))
caps = [r.caption for r in read_manifest(man) if r.lang == "en"][:256]
for m in (new, old): m.encode_text(caps[:8]); m.encode_text(caps[:8], against="images")
t = {}
for rnd in range(3):
    for name, m in ((NEW, new), (OLD, old)):
        for against in ("texts", "images"):
            s = time.perf_counter(); m.encode_text(caps, against=against); t.setdefault((name, against), []).append(time.perf_counter() - s)
for k, v in t.items(): print(k, f"{min(v):.2f} s")
for name in (NEW, OLD):
    print(name, "ratio images/texts", round(min(t[(name, "images")]) / min(t[(name, "texts")]), 3))
