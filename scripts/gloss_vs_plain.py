"""One encoder with and without query glossing (mmembed/glossary.py), paired bootstrap over concepts.

    python scripts/gloss_vs_plain.py adapters/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img \
        -d data/build/emoji -d data/build/clipart -d data/build/tuxpaint -d data/build/gcompris \
        -d data/build/photos -d data/build/debian-photos -d data/build/parallel --out results/gloss-vs-plain-test

`mmembed eval --gloss` scores every encoder glossed; this script scores ONE encoder both ways on the same queries
(`mmembed eval`'s code: runner.score_task, compare.compare_encoders) and prints glossed minus plain per task and
dataset, over the glossed languages only (sw, hi, ar, de, fr, es, ru; the others are unchanged by glossing), with
the 95% interval of the paired bootstrap. `--langs` narrows the languages further.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mmembed.evaluation.compare import compare_encoders
from mmembed.evaluation.data import load_eval_data
from mmembed.evaluation.encoders import EncoderOptions, resolve_encoder
from mmembed.evaluation.runner import Embedder, QueryGlossing, score_task
from mmembed.evaluation.tasks import build_tasks
from mmembed.glossary import DEFAULT_WEIGHTS, SOURCES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("-d", "--data", action="append", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=120, help="concepts per dataset (as mmembed eval)")
    ap.add_argument("--langs", default=",".join(sorted(SOURCES)), help="query languages to score")
    ap.add_argument("--out", type=Path, required=True, help="folder for comparison.json and comparison.md")
    args = ap.parse_args()

    langs = frozenset(args.langs.split(","))
    tasks, _ = build_tasks(["t2i", "t2t", "bitext"], load_eval_data(args.data, args.split, args.limit, 0), langs | {"en"})
    tasks = [t for t in tasks if QueryGlossing.query_lang(t) in langs]
    embedder = Embedder(resolve_encoder(args.model, EncoderOptions()))
    glossing = QueryGlossing(DEFAULT_WEIGHTS)
    results = []
    for task in tasks:
        plain = score_task(embedder, task)
        results += [dataclasses.replace(plain, encoder="plain"),
                    dataclasses.replace(score_task(embedder, task, glossing=glossing), encoder="glossed")]
    rows = [d for d in compare_encoders(results, "glossed") if d.metric in ("R@1", "R@10", "acc")]
    lines = [f"# Query glossing: glossed minus plain, {args.model}, {args.split} split, query languages "
             f"{', '.join(sorted(langs))}", "", "| task | dataset | metric | difference | 95% interval | verdict |",
             "|---|---|---|---:|---|---|"]
    lines += [f"| {d.task} | {d.dataset} | {d.metric} | {100 * d.difference:+.1f} | [{100 * d.low:+.1f}, {100 * d.high:+.1f}] "
              f"| {d.verdict} |" for d in sorted(rows, key=lambda d: (d.task, d.dataset, d.metric))]
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"weights": DEFAULT_WEIGHTS, "langs": sorted(langs),
               "comparisons": [{**dataclasses.asdict(d), "verdict": d.verdict} for d in rows]}
    (args.out / "comparison.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    (args.out / "comparison.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
