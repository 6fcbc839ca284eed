"""Choose a model's feature read-out weight on DEV sets: prints t2i / i2t R@1 means per weight.

    python scripts/readout_weight_sweep.py runs/readout-37a/export \
        -d data/build/emoji -d data/build/clipart -d data/build/tuxpaint -d data/build/gcompris

The model must have a fitted read-out (mmembed/feature_readout.py; `mmembed train` fits it at export). Weight 0 is
the model without it. Each row gives images in both roles the row's weight (a model's `query_weight` is cleared), so
the i2t columns tell a query weight and the t2i columns a document weight (session 37). The read-out is applied inside encode_image, so images are embedded again per weight; texts,
which it never touches, once.

With `--refit RECIPE` the read-out is refitted first, with the recipe's [feature_readout] fit settings on the
pictures of its sources (features and embeddings computed once). With `fit_target = "sum"` the fit depends on the
weight and the gate, so each row refits:

    python scripts/readout_weight_sweep.py adapters/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout \
        --refit results/readout-fit-dev/sum.toml --gate on -d ...
"""
from __future__ import annotations

import dataclasses
import sys

import mmembed
from mmembed.evaluation.sweep import image_setting_sweep, sweep_arguments
from mmembed.training.config import TrainConfig
from mmembed.training.readout import fit_feature_readout, readout_fit_data
from mmembed.training.setup import build_sources

WEIGHTS = [0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]


def main() -> None:
    ap = sweep_arguments(__doc__.splitlines()[0])
    ap.add_argument("--weights", default=",".join(map(str, WEIGHTS)))
    ap.add_argument("--gate", choices=["off", "on", "both"], default="off", help="the confidence gate")
    ap.add_argument("--refit", metavar="RECIPE", help="refit first with this training recipe's [feature_readout] settings on its pictures")
    args = ap.parse_args()

    model = mmembed.load(args.model)
    readout = model.feature_readout
    if readout is None:
        ap.error(f"{args.model} has no feature read-out (config.feature_readout is None)")

    refit, per_row = None, False
    if args.refit:
        recipe = TrainConfig.from_toml(args.refit)
        if recipe.feature_readout is None:
            ap.error(f"{args.refit} has no [feature_readout] table to refit with")
        if recipe.feature_readout.hidden != readout.cfg.hidden:
            ap.error(f"{args.refit} fits a read-out of hidden={recipe.feature_readout.hidden}; the model's has "
                     f"hidden={readout.cfg.hidden}")
        readout.cfg = recipe.feature_readout
        per_row = readout.cfg.fit_target == "sum"
        sources, _ = build_sources(recipe)
        data = readout_fit_data(model, sources, captions_per_image=readout.cfg.fit_captions_per_image,
                                seed=recipe.seed, image_embeddings=per_row, progress=True)
        refit = lambda: print(fit_feature_readout(model, sources, seed=recipe.seed, data=data), file=sys.stderr)  # noqa: E731
        if not per_row:
            refit()

    def setting(weight: float, gate: bool):
        def apply() -> None:
            model.feature_readout = readout if weight else None
            readout.cfg = dataclasses.replace(readout.cfg, weight=weight, query_weight=None, confidence_gate=gate)  # both roles
            if per_row and weight:
                refit()
        return f"{weight:g}" + (", gated" if gate and weight else ""), apply

    gates = {"off": [False], "on": [True], "both": [False, True]}[args.gate]
    weights = [float(w) for w in args.weights.split(",")]
    settings = [setting(w, g) for g in gates for w in weights if w or g == gates[0]]
    image_setting_sweep(model, args.data, settings,
                        langs=args.langs.split(","), limit=args.limit, header="read-out weight")


if __name__ == "__main__":
    main()
