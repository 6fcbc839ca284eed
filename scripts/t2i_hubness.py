"""Hubness of text -> image search: how unevenly the top-1 results spread over the images.

    python scripts/t2i_hubness.py MODEL [MODEL...] -d data/build/photos -d data/build/debian-photos -d data/build/gcompris

Every image of the datasets' TEST splits is a candidate (pooled, as `mmembed eval --pool`); each caption of kind
"name" in each language (one per concept and language) is a query. Per model: R@1, the image that is top-1 for the
most queries and how many, how many images are never top-1, and the share of queries the three most frequent top-1
images take. A model whose image embeddings share a direction that some images get more of (e.g. a read-out added
with a weight that differs per image) makes those images hubs: they rise for every query, which text -> image
metrics feel and image -> text metrics do not (session 36, the read-out at weight 1).
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

import mmembed
from mmembed.evaluation.data import load_eval_data

LANGS = "en,de,fr,es,zh,ja,ar,hi,sw,ru"


def test_pairs(folders: list[str], langs: set[str]) -> tuple[list[str], dict[str, Path], dict[tuple[str, str], str]]:
    """(concepts, concept -> image, (concept, lang) -> the first name caption) over the folders' test splits, read
    and checked as `mmembed eval` reads them."""
    images: dict[str, Path] = {}
    names: dict[tuple[str, str], str] = {}
    for dataset in load_eval_data(folders, "test", limit=None, seed=0):
        for r in dataset.records:
            if r.image_path is None:
                continue
            images.setdefault(r.record.concept, r.image_path)
            if r.record.lang in langs and r.record.kind == "name":
                names.setdefault((r.record.concept, r.record.lang), r.record.caption)
    return sorted(images), images, names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("-d", "--data", action="append", required=True, help="dataset folder (its test split is used)")
    ap.add_argument("--langs", default=LANGS)
    args = ap.parse_args()
    langs = args.langs.split(",")
    concepts, images, names = test_pairs(args.data, set(langs))
    print("| model | queries | R@1 | most top-1 (image) | images never top-1 | top-3 images' share |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        model = mmembed.load(name)
        image_emb = model.encode_image([images[c] for c in concepts])  # (n, D)
        top1 = collections.Counter()
        hits = []
        for lang in langs:
            queries = [(c, names[(c, lang)]) for c in concepts if (c, lang) in names]
            if not queries:
                continue
            best = (model.encode_text([q for _, q in queries]) @ image_emb.T).argmax(axis=1)  # (q,)
            top1.update(best.tolist())
            hits += [concepts[b] == c for (c, _), b in zip(queries, best)]
        counts = np.array([top1[i] for i in range(len(concepts))])
        print(f"| {model.name} | {len(hits)} | {np.mean(hits):.3f} | {counts.max()} ({concepts[counts.argmax()]}) "
              f"| {int((counts == 0).sum())} / {len(concepts)} | {np.sort(counts)[-3:].sum() / len(hits):.2f} |", flush=True)


if __name__ == "__main__":
    main()
