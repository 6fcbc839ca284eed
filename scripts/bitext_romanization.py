"""Would a romanization next to non-Latin text help cross-lingual retrieval? Bitext accuracy (as `mmembed eval -t
bitext`) per direction when every text that anyascii changes is embedded as "TEXT (ROMANIZED)" or "TEXT / ROMANIZED".
Why: the test misses are transliterated names (hi "नाइजीरिया" -> ours "Nicaragua", e5 "Nigeria"; anyascii gives
"naijiriya"). Needs `pip install anyascii` (not a dependency of mmembed).

    flock /tmp/mmembed-heavy.lock python scripts/bitext_romanization.py --split dev     # ~4 min on 2 cores
"""
from __future__ import annotations

import argparse

import numpy as np

from mmembed.evaluation.data import load_eval_data
from mmembed.evaluation.encoders import EncoderOptions, resolve_encoder
from mmembed.evaluation.metrics import first_relevant_rank, relevance_from_keys
from mmembed.evaluation.tasks import build_bitext

LANGS = frozenset("en de fr es zh ja ar hi sw ru".split())
FORMATS = {"plain": None, "paren": "{text} ({roman})", "slash": "{text} / {roman}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default="adapters/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img")
    ap.add_argument("--data", default="data/build/parallel")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--limit", type=int, default=120, help="concepts (as mmembed eval)")
    args = ap.parse_args()
    try:
        from anyascii import anyascii
    except ImportError:
        raise SystemExit("this analysis needs anyascii: pip install anyascii") from None

    def shown(text: str, fmt: str | None) -> str:
        roman = anyascii(text)
        return text if fmt is None or roman == text or not roman.strip() else fmt.format(text=text, roman=roman)

    encoder = resolve_encoder(args.model, EncoderOptions())
    acc: dict[str, dict[str, float]] = {k: {} for k in FORMATS}
    for task in build_bitext(load_eval_data([args.data], args.split, args.limit, 0)[0], LANGS):
        relevant = relevance_from_keys(task.queries.keys, task.targets.keys)
        for name, fmt in FORMATS.items():
            q = encoder.encode_text([shown(t, fmt) for t in task.queries.items], "query")
            t = encoder.encode_text([shown(t, fmt) for t in task.targets.items], "query")
            acc[name][task.group] = float((first_relevant_rank(q @ t.T, relevant) == 1).mean())
    groups = sorted(acc["plain"])
    print(f"| {args.split} | mean | " + " | ".join(groups) + " |")
    print("|---|---:|" + "---:|" * len(groups))
    for name in FORMATS:
        print(f"| {name} | {100 * np.mean(list(acc[name].values())):.2f} | "
              + " | ".join(f"{100 * acc[name][g]:.0f}" for g in groups) + " |")


if __name__ == "__main__":
    main()
