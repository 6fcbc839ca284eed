"""Seeds of one recipe against a reference model: a markdown table of the means over languages from `mmembed eval`
result folders, with each seed's value, their mean, the change and whether EVERY seed is above (below) the reference.

    python scripts/seed_table.py --reference gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img \\
        results/MODEL results/MODEL-s2 results/MODEL-s3

The reference's numbers are read from the first folder (the seed-1 run scores both models); each seed is its folder's
first encoder. "every seed": every seed strictly above (below) the reference. With `--reference-seeds` (the
reference recipe's other seeds, scored alone) the reference is the mean of its seeds, and "every seed" means every
seed above (below) every reference seed:

    python scripts/seed_table.py --reference gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout \
        results/NEW results/NEW-s2 results/NEW-s3 --reference-seeds results/REF-s2 results/REF-s3
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def means(folder: Path, encoder: str | None = None) -> tuple[str, dict[tuple[str, str, str], float]]:
    """(encoder, {(task, dataset, metric): mean over languages, in %}) of a result folder's first (or named) encoder."""
    data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    name = encoder or data["encoders"][0]["name"]
    rows = {(s["task"], s["dataset"], metric): 100 * value
            for s in data["summary"] if s["encoder"] == name for metric, value in s["mean"].items() if metric != "MRR"}
    if not rows:
        raise SystemExit(f"{folder}: no summary rows for encoder {name!r}")
    return name, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path, help="result folders, one per seed (seed 1 first)")
    ap.add_argument("--reference", required=True, help="encoder name of the reference model in the first folder")
    ap.add_argument("--reference-seeds", nargs="*", type=Path, default=[],
                    help="result folders of the reference recipe's other seeds (their first encoder)")
    args = ap.parse_args()

    references = [means(args.folders[0], args.reference)[1]] + [means(f)[1] for f in args.reference_seeds]
    seeds = [means(f)[1] for f in args.folders]
    keys = sorted(k for k in references[0] if all(k in s for s in seeds + references))
    print(f"| task | dataset | metric | reference{' (mean of its seeds)' if args.reference_seeds else ''} "
          f"| seeds {' / '.join(str(i + 1) for i in range(len(seeds)))} | mean | change | every seed |")
    print("|---|---|---|---|---|---|---|---|")
    above = below = 0
    for key in keys:
        refs, values = [r[key] for r in references], [s[key] for s in seeds]
        ref, mean = sum(refs) / len(refs), sum(values) / len(values)
        verdict = ("above" if min(values) > max(refs) else
                   "below" if max(values) < min(refs) else "-")
        above, below = above + (verdict == "above"), below + (verdict == "below")
        print(f"| {' | '.join(key)} | {ref:.1f} | {' / '.join(f'{v:.1f}' for v in values)} | {mean:.1f} "
              f"| {mean - ref:+.2f} | {verdict} |")
    print(f"\nabove with every seed on {above} of {len(keys)} means, below on {below}")


if __name__ == "__main__":
    main()
