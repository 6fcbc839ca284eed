"""Query-side centering against text -> image hubs: rank images by (q - beta * mu) . v, mu the mean embedding of a
fixed bank of TRAIN captions. Subtracting mu from every query demotes images that lean toward texts in general (a
CSLS-like per-image bias, v . mu, that needs nothing stored with the images). Prints R@1 / R@5 / R@10, the most
frequent top-1 image's count and how many images are never top-1, per dataset and beta:

    python scripts/t2i_query_centering.py dev MODEL [MODEL...]

Queries: for each concept and language its first caption (names first, as `mmembed eval` picks them); candidates: the
split's images (all of them, no --limit). Session 37: no beta helps on dev (results/readout-fit-dev/README.md).
"""
from __future__ import annotations

import argparse
import collections
import json
import random

import numpy as np

import mmembed
from mmembed.evaluation.data import load_eval_data

LANGS = "en,de,fr,es,zh,ja,ar,hi,sw,ru".split(",")
DATASETS = ["gcompris", "emoji", "clipart", "tuxpaint"]
BANK_SOURCES = ["emoji", "clipart", "tuxpaint", "gcompris"]
BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def split_pairs(folder: str, split: str):
    """(concepts, concept -> image, (concept, lang) -> caption) of one dataset's split."""
    images, names = {}, {}
    for ds in load_eval_data([folder], split, limit=None, seed=0):
        records = sorted(ds.records, key=lambda r: r.record.kind != "name")  # names first
        for r in records:
            if r.image_path is None:
                continue
            images.setdefault(r.record.concept, r.image_path)
            if r.record.lang in LANGS:
                names.setdefault((r.record.concept, r.record.lang), r.record.caption)
    return sorted(images), images, names


def caption_bank(per_source: int = 600) -> list[str]:
    rng, bank = random.Random(0), []
    for source in BANK_SOURCES:
        with open(f"data/build/{source}/train.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        rows = [r for r in rows if r["lang"] in LANGS]
        rng.shuffle(rows)
        bank += [r["caption"] for r in rows[:per_source]]
    return bank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split", choices=["dev", "test"])
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    data = {name: split_pairs(f"data/build/{name}", args.split) for name in DATASETS}
    bank = caption_bank()
    print("| model | dataset | beta | queries | images | R@1 | R@5 | R@10 | most top-1 | never top-1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        model = mmembed.load(name)
        mu = model.encode_text(bank, progress=False).mean(axis=0)  # (D,)
        for dataset, (concepts, images, names) in data.items():
            gallery = model.encode_image([images[c] for c in concepts], progress=False)  # (n, D)
            pairs = [(i, names[c, lang]) for lang in LANGS for i, c in enumerate(concepts) if (c, lang) in names]
            queries = model.encode_text([q for _, q in pairs], progress=False)  # (q, D)
            gold = np.array([i for i, _ in pairs])
            for beta in BETAS:
                scores = (queries - beta * mu) @ gallery.T  # (q, n)
                rank = (scores > scores[np.arange(len(gold)), gold][:, None]).sum(axis=1)
                top1 = collections.Counter(scores.argmax(axis=1).tolist())
                print(f"| {model.name} | {dataset} | {beta:g} | {len(gold)} | {len(concepts)} | {100 * np.mean(rank < 1):.1f} "
                      f"| {100 * np.mean(rank < 5):.1f} | {100 * np.mean(rank < 10):.1f} | {max(top1.values())} "
                      f"| {len(concepts) - len(top1)} |", flush=True)


if __name__ == "__main__":
    main()
