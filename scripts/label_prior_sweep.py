"""Choose a model's label prior (weight, top_k) on DEV sets: prints t2i / i2t R@1 means per grid point.

    python scripts/label_prior_sweep.py gemma3-270m-mm-lora-cpu-tux \
        -d data/build/emoji -d data/build/clipart -d data/build/tuxpaint

The first row is "none" (the model without a prior). The rule used for the shipped model: the highest mean
with no column below "none". Text embeddings are computed once; images are re-embedded per grid point
because the prior is applied inside encode_image.
"""
from __future__ import annotations

import argparse

import numpy as np

import mmembed
from mmembed.config import LabelPriorConfig
from mmembed.evaluation.data import load_eval_data
from mmembed.evaluation.encoders import MMEmbedEncoder
from mmembed.evaluation.report import summarize
from mmembed.evaluation.runner import Embedder, score_task
from mmembed.evaluation.tasks import build_tasks
from mmembed.label_prior import LabelPrior, refresh_label_embeddings

GRID = [(0.5, 5), (0.6, 5), (0.75, 5), (1.0, 5), (0.5, 3), (0.5, 10), (1.0, 1), (1.0, 20)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-d", "--data", action="append", required=True, help="dataset folder (its dev split is used)")
    ap.add_argument("--langs", default="en,de,fr,es,zh,ja,ar,hi,sw,ru")
    ap.add_argument("--limit", type=int, default=120, help="concepts per dataset (as mmembed eval)")
    args = ap.parse_args()

    model = mmembed.load(args.model)
    tasks, _ = build_tasks(["t2i", "i2t"], load_eval_data(args.data, "dev", args.limit, 0), frozenset(args.langs.split(",")))
    prior = LabelPrior(LabelPriorConfig(), 1000, model.dim)
    model.label_prior = prior
    refresh_label_embeddings(model)  # the class names, embedded once for every grid point
    embedder = Embedder(MMEmbedEncoder(model))
    header = None
    for setting in [None, *GRID]:
        if setting is None:
            model.label_prior = None
        else:
            model.label_prior = prior
            prior.cfg = LabelPriorConfig(weight=setting[0], top_k=setting[1])
        embedder.cache = {k: v for k, v in embedder.cache.items() if k[0] == "text"}  # images again, texts kept
        means = summarize([score_task(embedder, task) for task in tasks])  # mean over languages
        cols = dict(sorted((f"{m['task']} {m['dataset']}", 100 * m["mean"]["R@1"]) for m in means))
        if header is None:
            header = list(cols)
            print("| prior | " + " | ".join(header) + " | mean |")
            print("|---|" + "---|" * (len(header) + 1))
        name = "none" if setting is None else f"weight {setting[0]}, top {setting[1]}"
        print(f"| {name} | " + " | ".join(f"{cols[h]:.1f}" for h in header) + f" | {np.mean(list(cols.values())):.1f} |", flush=True)


if __name__ == "__main__":
    main()
