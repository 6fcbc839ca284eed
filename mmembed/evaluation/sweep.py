"""Dev sweeps of an inference-time image setting (label prior, feature read-out): one R@1 table row per setting.

Each setting changes how `encode_image` embeds pictures, so images are embedded again per row; texts, which no such
setting touches, are embedded once.
"""
from __future__ import annotations

import argparse
from typing import Callable, Sequence

import numpy as np

from .data import load_eval_data
from .encoders import MMEmbedEncoder
from .report import summarize
from .runner import Embedder, score_task
from .tasks import build_tasks


def sweep_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every sweep script takes: a model and dev data sets (as `mmembed eval`'s)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("model")
    ap.add_argument("-d", "--data", action="append", required=True, help="dataset folder (its dev split is used)")
    ap.add_argument("--langs", default="en,de,fr,es,zh,ja,ar,hi,sw,ru")
    ap.add_argument("--limit", type=int, default=120, help="concepts per dataset (as mmembed eval)")
    return ap


def image_setting_sweep(model, data: Sequence[str], settings: Sequence[tuple[str, Callable[[], None]]], *,
                        langs: Sequence[str], limit: int, header: str) -> None:
    """Print a markdown table of t2i / i2t R@1 means over `langs` on the DEV splits of `data`, one row per
    (label, apply) in `settings`: apply() puts the model in that setting."""
    tasks, _ = build_tasks(["t2i", "i2t"], load_eval_data(list(data), "dev", limit, 0), frozenset(langs))
    embedder = Embedder(MMEmbedEncoder(model))
    columns = None
    for label, apply in settings:
        apply()
        embedder.cache = {k: v for k, v in embedder.cache.items() if k[0] == "text"}  # images again, texts kept
        means = summarize([score_task(embedder, task) for task in tasks])  # mean over languages
        cols = dict(sorted((f"{m['task']} {m['dataset']}", 100 * m["mean"]["R@1"]) for m in means))
        if columns is None:
            columns = list(cols)
            print(f"| {header} | " + " | ".join(columns) + " | mean |")
            print("|---|" + "---|" * (len(columns) + 1))
        print(f"| {label} | " + " | ".join(f"{cols[c]:.1f}" for c in columns) + f" | {np.mean(list(cols.values())):.1f} |",
              flush=True)
