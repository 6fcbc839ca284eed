"""Choose query glossing's weight per language on DEV sets (mmembed/glossary.py DEFAULT_WEIGHTS).

    python scripts/gloss_weight_sweep.py adapters/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img \
        -d data/build/emoji -d data/build/clipart -d data/build/tuxpaint -d data/build/gcompris \
        -d data/build/parallel --out results/gloss-sweep-dev

For every language with a dictionary and every weight of the grid it scores t2i and t2t (R@1) and bitext
(accuracy, the language -> en direction: the one whose queries are glossed) through `mmembed eval`'s own code
(runner.QueryGlossing), averages each family over the datasets, and averages the families. The rule: the
SMALLEST weight whose mean is within 0.5 points of the best (less intervention when the gain is noise-sized).
Embeddings are computed once; every grid point reuses them.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from mmembed.evaluation.data import load_eval_data
from mmembed.evaluation.encoders import EncoderOptions, resolve_encoder
from mmembed.evaluation.runner import Embedder, QueryGlossing, score_task
from mmembed.evaluation.tasks import build_tasks
from mmembed.glossary import SOURCES

GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
TOLERANCE = 0.5  # points: weights this close to the best count as equal, and the smallest wins


def family(task) -> str:
    return task.kind  # t2i, t2t or bitext


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-d", "--data", action="append", required=True, help="dataset folder (its dev split is used)")
    ap.add_argument("--limit", type=int, default=120, help="concepts per dataset (as mmembed eval)")
    ap.add_argument("--out", type=Path, required=True, help="folder for sweep.json and sweep.md")
    args = ap.parse_args()

    langs = sorted(SOURCES)
    tasks, _ = build_tasks(["t2i", "t2t", "bitext"], load_eval_data(args.data, "dev", args.limit, 0),
                           frozenset([*langs, "en"]))
    tasks = [t for t in tasks if QueryGlossing.query_lang(t) in SOURCES]  # queries in a glossed language
    embedder = Embedder(resolve_encoder(args.model, EncoderOptions()))
    glossings = {w: QueryGlossing({lang: w for lang in langs}) for w in GRID}
    scores: dict[str, dict[str, dict[float, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for task in tasks:
        for w, glossing in glossings.items():
            result = score_task(embedder, task, glossing=glossing if w > 0 else None)
            value = result.metrics.get("R@1", result.metrics.get("acc"))
            scores[QueryGlossing.query_lang(task)][family(task)][w].append(100 * value)

    lines = [f"# Query glossing weight sweep (dev): {args.model}", "",
             "Mean over the families t2i R@1, t2t R@1 and bitext accuracy (each averaged over its datasets).", "",
             "| lang | " + " | ".join(f"w={w:g}" for w in GRID) + " | chosen |", "|---|" + "---:|" * (len(GRID) + 1)]
    report: dict[str, dict] = {}
    for lang in langs:
        fams = scores[lang]
        means = {w: float(np.mean([np.mean(fams[f][w]) for f in fams])) for w in GRID}
        best = max(means.values())
        chosen = min(w for w in GRID if means[w] >= best - TOLERANCE)
        report[lang] = {"chosen": chosen, "means": means,
                        "families": {f: {w: float(np.mean(v)) for w, v in fams[f].items()} for f in fams}}
        lines.append(f"| {lang} | " + " | ".join(f"{means[w]:.2f}" for w in GRID) + f" | {chosen:g} |")
        for f in sorted(fams):
            lines.append(f"| {lang} {f} | " + " | ".join(f"{np.mean(fams[f][w]):.1f}" for w in GRID) + " | |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (args.out / "sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print("DEFAULT_WEIGHTS =", {lang: report[lang]["chosen"] for lang in langs})


if __name__ == "__main__":
    main()
