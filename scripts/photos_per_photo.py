"""Per-photo t2i rank on an eval-only photo set (data/photos.md "Where we lose", data/debian-photos.md): the
captions `mmembed eval` uses (one name per photo and language), 10 languages, for each encoder given.

    flock /tmp/mmembed-heavy.lock python scripts/photos_per_photo.py   # the `photos` set, the encoders of data/photos.md
    flock /tmp/mmembed-heavy.lock python scripts/photos_per_photo.py --data data/build/debian-photos \
        -m adapters/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img -m imagenet-labels       # ~40 s on 2 cores
"""
import argparse

import numpy as np

from mmembed.evaluation.data import find_datasets
from mmembed.evaluation.encoders import EncoderOptions, resolve_encoder
from mmembed.evaluation.tasks import build_t2i

LANGS = frozenset("en,de,fr,es,zh,ja,ar,hi,sw,ru".split(","))

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", default="data/build/photos", help="a built photo set (all test)")
parser.add_argument("-m", "--model", action="append", help="encoder: model name, adapter folder or baseline")
args = parser.parse_args()
(ds,) = find_datasets(args.data, "test")
tasks = build_t2i(ds, LANGS)
for name in args.model or ["gemma3-270m-mm-lora", "gemma3-270m-mm", "imagenet-labels"]:
    enc = resolve_encoder(name, EncoderOptions())
    imgs = enc.encode_images(list(tasks[0].targets.items))
    stems = [p.rsplit("/", 1)[-1][:-4] for p in tasks[0].targets.items]
    hits = {s: [] for s in stems}
    top_wrong = {s: {} for s in stems}
    for t in tasks:
        assert t.targets.items == tasks[0].targets.items
        q = enc.encode_text(list(t.queries.items), "query")
        sim = q @ imgs.T
        for i, key in enumerate(t.queries.keys):
            gold = [j for j, k in enumerate(t.targets.keys) if set(k) & set(key)][0]
            rank = int((sim[i] > sim[i, gold]).sum()) + 1
            hits[stems[gold]].append(rank)
            if rank > 1:
                w = stems[int(sim[i].argmax())]
                top_wrong[stems[gold]][w] = top_wrong[stems[gold]].get(w, 0) + 1
        if t.group == "en":
            print(name, "en queries:", list(t.queries.items))
    print(name)
    for s in stems:
        r = hits[s]
        print(f"  {s:18s} R@1 {sum(x == 1 for x in r)}/{len(r)}  mean rank {np.mean(r):.1f}  top wrong {top_wrong[s]}")
