"""Choose a model's feature read-out weight on DEV sets: prints t2i / i2t R@1 means per weight.

    python scripts/readout_weight_sweep.py runs/readout-37a/export \
        -d data/build/emoji -d data/build/clipart -d data/build/tuxpaint -d data/build/gcompris

The model must have a fitted read-out (mmembed/feature_readout.py; `mmembed train` fits it at export). Weight 0 is
the model without it. The read-out is applied inside encode_image, so images are embedded again per weight; texts,
which it never touches, once.
"""
from __future__ import annotations

import dataclasses

import mmembed
from mmembed.evaluation.sweep import image_setting_sweep, sweep_arguments

WEIGHTS = [0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]


def main() -> None:
    ap = sweep_arguments(__doc__.splitlines()[0])
    ap.add_argument("--weights", default=",".join(map(str, WEIGHTS)))
    ap.add_argument("--gate", choices=["off", "on", "both"], default="off", help="the confidence gate")
    args = ap.parse_args()

    model = mmembed.load(args.model)
    readout = model.feature_readout
    if readout is None:
        ap.error(f"{args.model} has no feature read-out (config.feature_readout is None)")

    def setting(weight: float, gate: bool):
        def apply() -> None:
            model.feature_readout = readout if weight else None
            readout.cfg = dataclasses.replace(readout.cfg, weight=weight, confidence_gate=gate)
        return f"{weight:g}" + (", gated" if gate and weight else ""), apply

    gates = {"off": [False], "on": [True], "both": [False, True]}[args.gate]
    weights = [float(w) for w in args.weights.split(",")]
    settings = [setting(w, g) for g in gates for w in weights if w or g == gates[0]]
    image_setting_sweep(model, args.data, settings,
                        langs=args.langs.split(","), limit=args.limit, header="read-out weight")


if __name__ == "__main__":
    main()
