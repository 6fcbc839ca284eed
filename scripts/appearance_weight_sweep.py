"""Choose the appearance weight of image -> image search on DEV: prints i2i R@1 / R@5 / R@10 / MRR per weight.

    python scripts/appearance_weight_sweep.py gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui2-soup \
        -d data/build/emoji-styles

The weight only changes how the two cosines are mixed (mmembed/appearance.py), so every image is embedded once (the
eval's cache) and each row re-scores: weight 0 is the embedding alone, 1 the image tower's features alone (the
image-features baseline). Session 41 chose 0.5 with it (appearance.DEFAULT_APPEARANCE_WEIGHT).
"""
from __future__ import annotations

import mmembed
from mmembed.evaluation.data import load_eval_data
from mmembed.evaluation.encoders import MMEmbedEncoder
from mmembed.evaluation.runner import Embedder, score_task
from mmembed.evaluation.sweep import sweep_arguments
from mmembed.evaluation.tasks import build_tasks

WEIGHTS = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0]


def main() -> None:
    ap = sweep_arguments(__doc__.splitlines()[0])
    ap.add_argument("--weights", default=",".join(map(str, WEIGHTS)))
    ap.add_argument("--split", default="dev")
    args = ap.parse_args()
    tasks, _ = build_tasks(["i2i"], load_eval_data(args.data, args.split, None, 0))
    encoder = MMEmbedEncoder(mmembed.load(args.model))
    embedder = Embedder(encoder)
    print("| appearance weight | task | queries | R@1 | R@5 | R@10 | MRR |\n|---|---|---|---|---|---|---|")
    for weight in (float(w) for w in args.weights.split(",")):
        encoder.appearance_weight = weight
        for task in tasks:
            m = score_task(embedder, task).metrics
            print(f"| {weight:g} | {task.id} | {len(task.queries)} | "
                  + " | ".join(f"{100 * m[k]:.1f}" for k in ("R@1", "R@5", "R@10", "MRR")) + " |", flush=True)


if __name__ == "__main__":
    main()
