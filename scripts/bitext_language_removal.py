"""Language-information removal (LIR; Yang et al., 2021) probe for cross-lingual retrieval: project the top-r principal
directions of per-language centroids out of every text embedding, then score `mmembed eval`'s bitext tasks:

    python scripts/bitext_language_removal.py dev MODEL

Centroids: the mean embedding of up to 150 training texts (data/build/parallel TRAIN split) per language, for the ten
judged languages and 30 more. Session 37, dev, stage 37e: r = 0 / 1 / 2 / 4 / 8 / 16 give 90.8 / 90.6 / 90.9 / 90.6 /
89.3 / 86.5: a model trained contrastively on bitext has little language identity left to remove. Not built.
"""
from __future__ import annotations

import argparse
import collections
import json
import random

import numpy as np

import mmembed
from mmembed.evaluation.data import load_eval_data
from mmembed.evaluation.tasks import build_bitext

LANGS = frozenset("en,de,fr,es,zh,ja,ar,hi,sw,ru".split(","))
RANKS = (0, 1, 2, 4, 8, 16)


def language_directions(model, per_language: int = 150, extra_languages: int = 30) -> np.ndarray:
    """(k, D) principal directions of the centred per-language mean embeddings, strongest first."""
    rng = random.Random(0)
    texts: dict[str, list[str]] = collections.defaultdict(list)
    with open("data/build/parallel/train.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            texts[r["lang"]].append(r["caption"])
            texts[r.get("text_lang") or "en"].append(r["text"])
    others = [lang for lang in sorted(texts) if lang not in LANGS and len(texts[lang]) >= 400][:extra_languages]
    centroids = []
    for lang in sorted(LANGS) + others:
        sample = list(dict.fromkeys(texts[lang]))
        rng.shuffle(sample)
        centroids.append(model.encode_text(sample[:per_language], progress=False).mean(axis=0))
    c = np.array(centroids)  # (languages, D)
    return np.linalg.svd(c - c.mean(axis=0), full_matrices=False)[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("split", choices=["dev", "test"])
    ap.add_argument("model")
    args = ap.parse_args()
    model = mmembed.load(args.model)
    directions = language_directions(model)
    tasks = build_bitext(load_eval_data(["data/build/parallel"], args.split, limit=120, seed=0)[0], LANGS)
    cache: dict[str, np.ndarray] = {}

    def embed(items: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(items) if t not in cache]
        if todo:
            cache.update(zip(todo, model.encode_text(todo, progress=False)))
        return np.array([cache[t] for t in items])

    print("| r | bitext acc |")
    print("|---|---|")
    for r in RANKS:
        accs = []
        for task in tasks:
            sides = []
            for side in (task.queries, task.targets):
                e = embed(list(side.items))  # (n, D)
                e = e - (e @ directions[:r].T) @ directions[:r]
                sides.append(e / np.linalg.norm(e, axis=1, keepdims=True))
            scores = sides[0] @ sides[1].T
            correct = np.array([[bool(set(a) & set(b)) for b in task.targets.keys] for a in task.queries.keys])
            accs.append(correct[np.arange(len(scores)), scores.argmax(axis=1)].mean())
        print(f"| {r} | {100 * np.mean(accs):.1f} |", flush=True)


if __name__ == "__main__":
    main()
