"""Would re-scoring help cross-lingual retrieval? Bitext accuracy (as `mmembed eval -t bitext`) for each
encoder with plain cosine, with each language's mean embedding removed, and with CSLS.

    python scripts/bitext_rescoring.py gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img e5

- "center": q -> normalize(q - mean_L), the mean over up to 300 TRAIN captions of language L (English:
  the anchors), so nothing of dev / test is used. Removing a language's shared direction is the
  "language-neutral" trick of Libovicky et al. (2020).
- "csls": cross-domain similarity local scaling (Conneau et al., 2018): 2 cos(q, t) - r_q - r_t, r the
  mean cosine of an item's k = 10 nearest neighbours in the other side's pool. It demotes hubs.
Prints the mean over the 18 directions en <-> de, fr, es, zh, ja, ar, hi, sw, ru, on dev and test.
"""
from __future__ import annotations

import argparse
import json
import random

import numpy as np

from mmembed.evaluation.data import load_eval_data
from mmembed.evaluation.encoders import EncoderOptions, resolve_encoder
from mmembed.evaluation.metrics import first_relevant_rank, relevance_from_keys
from mmembed.evaluation.runner import Embedder
from mmembed.evaluation.tasks import build_bitext

LANGS = frozenset("en de fr es zh ja ar hi sw ru".split())


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def csls(q: np.ndarray, t: np.ndarray, k: int = 10) -> np.ndarray:
    sim = q @ t.T  # (nq, nt)
    k = min(k, sim.shape[0] - 1, sim.shape[1] - 1)
    r_q = np.sort(sim, axis=1)[:, -k:].mean(axis=1)
    r_t = np.sort(sim, axis=0)[-k:, :].mean(axis=0)
    return 2 * sim - r_q[:, None] - r_t[None, :]


def train_samples(path: str, per_lang: int = 300) -> dict[str, list[str]]:
    texts: dict[str, set[str]] = {lang: set() for lang in LANGS}
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if r["lang"] in LANGS:
            texts[r["lang"]].add(r["caption"])
            texts["en"].add(r["text"])
    rng = random.Random(0)
    return {lang: rng.sample(sorted(t), min(per_lang, len(t))) for lang, t in texts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("encoders", nargs="+", help="model names / folders, or a baseline name (e5)")
    ap.add_argument("--data", default="data/build/parallel")
    ap.add_argument("--limit", type=int, default=120, help="concepts per split (as mmembed eval)")
    args = ap.parse_args()
    samples = train_samples(f"{args.data}/train.jsonl")
    for name in args.encoders:
        encoder = resolve_encoder(name, EncoderOptions())
        embedder = Embedder(encoder)
        means = {lang: unit(np.asarray(encoder.encode_text(texts, "query"), dtype=np.float32)).mean(0)
                 for lang, texts in samples.items()}
        for split in ("dev", "test"):
            tasks = build_bitext(load_eval_data([args.data], split, args.limit, 0)[0], LANGS)
            acc: dict[str, list[float]] = {"cosine": [], "center": [], "csls": [], "center+csls": []}
            for task in tasks:
                lq, lt = task.group.split("->")
                q, t = embedder.embed(task.queries), embedder.embed(task.targets)
                qc, tc = unit(q - means[lq]), unit(t - means[lt])
                relevant = relevance_from_keys(task.queries.keys, task.targets.keys)
                for key, sim in (("cosine", q @ t.T), ("center", qc @ tc.T), ("csls", csls(q, t)),
                                 ("center+csls", csls(qc, tc))):
                    acc[key].append(float((first_relevant_rank(sim, relevant) == 1).mean()))
            print(f"{encoder.name} {split}: " + ", ".join(f"{k} {100 * np.mean(v):.2f}" for k, v in acc.items()), flush=True)


if __name__ == "__main__":
    main()
