"""47a vs 46b: texts against texts bit for bit, image embeddings within int8 rounding; encode cost against images."""
import time
import numpy as np
import mmembed
from mmembed.data.manifest import read_manifest, resolve_image
B = "gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-"
new, old = mmembed.load(B + "texts40"), mmembed.load(B + "texts20")
texts = ["a red apple", "ein kleiner Hund", "一只猫", "الشمس المشرقة", "गिटार बजाना", "mti mkubwa", "un gatto nero", "een zwarte kat"]
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
    for name, m in (("47a", new), ("46b", old)):
        for against in ("texts", "images"):
            s = time.perf_counter(); m.encode_text(caps, against=against); t.setdefault((name, against), []).append(time.perf_counter() - s)
for k, v in t.items(): print(k, f"{min(v):.2f} s")
for name in ("47a", "46b"):
    print(name, "ratio images/texts", round(min(t[(name, "images")]) / min(t[(name, "texts")]), 3))
