"""Average the trained weights of runs that share a base (a "model soup", Wortsman et al., 2022).

    python scripts/weight_soup.py runs/soup A/final B/final C/final

Every folder must be a saved mmembed model with the same tensors (names and shapes); the soup is
their uniform mean, written as a model folder with the first one's config (its name changed to the
output folder's). Tensors equal in all inputs (a frozen text side) stay as they are. The soup has
no label-prior table or image centering of its own to refit: the config's settings are kept.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmembed.serialization import CONFIG, WEIGHTS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("models", nargs="+", type=Path)
    args = ap.parse_args()
    if len(args.models) < 2:
        ap.error("give at least two model folders")
    states = [load_file(str(m / WEIGHTS)) for m in args.models]
    for m, s in zip(args.models[1:], states[1:]):
        if {k: v.shape for k, v in s.items()} != {k: v.shape for k, v in states[0].items()}:
            ap.error(f"{m} has other tensors than {args.models[0]}: not runs of one base")
    soup, differ = {}, []
    for key, first in states[0].items():
        tensors = [s[key] for s in states]
        if any(not torch.equal(first, t) for t in tensors[1:]):
            differ.append(key)
        soup[key] = (sum(t.float() for t in tensors) / len(tensors)).to(first.dtype)
    args.out.mkdir(parents=True, exist_ok=False)
    save_file(soup, str(args.out / WEIGHTS), metadata={"format": "pt", "mmembed": "1"})
    config = json.loads((args.models[0] / CONFIG).read_text())
    config["name"] = args.out.name
    (args.out / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False))
    print(f"{args.out}: mean of {len(states)} models; {len(differ)} of {len(soup)} tensors differ between them: "
          f"{', '.join(differ[:8])}{' ...' if len(differ) > 8 else ''}")


if __name__ == "__main__":
    main()
