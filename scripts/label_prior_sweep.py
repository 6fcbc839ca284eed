"""Choose a model's label prior (weight, top_k) on DEV sets: prints t2i / i2t R@1 means per grid point.

    python scripts/label_prior_sweep.py gemma3-270m-mm-lora-cpu-tux \
        -d data/build/emoji -d data/build/clipart -d data/build/tuxpaint

The first row is "none" (the model without a prior). The rule used for the shipped model: the highest mean
with no column below "none". Text embeddings are computed once; images are re-embedded per grid point
because the prior is applied inside encode_image.
"""
from __future__ import annotations


import mmembed
from mmembed.config import LabelPriorConfig
from mmembed.evaluation.sweep import image_setting_sweep, sweep_arguments
from mmembed.label_prior import LabelPrior, refresh_label_embeddings

GRID = [(0.5, 5), (0.6, 5), (0.75, 5), (1.0, 5), (0.5, 3), (0.5, 10), (1.0, 1), (1.0, 20)]


def main() -> None:
    ap = sweep_arguments(__doc__.splitlines()[0])
    args = ap.parse_args()

    model = mmembed.load(args.model)
    prior = LabelPrior(LabelPriorConfig(), 1000, model.dim)
    model.label_prior = prior
    refresh_label_embeddings(model)  # the class names, embedded once for every grid point

    def setting(weight: float, top_k: int):
        def apply() -> None:
            model.label_prior = prior
            prior.cfg = LabelPriorConfig(weight=weight, top_k=top_k)
        return f"weight {weight}, top {top_k}", apply

    off = ("none", lambda: setattr(model, "label_prior", None))
    image_setting_sweep(model, args.data, [off, *(setting(w, k) for w, k in GRID)], langs=args.langs.split(","),
                        limit=args.limit, header="prior")


if __name__ == "__main__":
    main()
