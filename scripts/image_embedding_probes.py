"""Probes of inference-time changes to image embeddings, scored by `mmembed eval` without saving a model: a model
named NAME+VARIANT loads NAME and changes how it embeds images. Session 44 (results/session44-neighbours):

    NAME+flip           tower feature maps averaged over the image and its mirror (test-time augmentation)
    NAME+flipzoom       ... and a 0.75 centre crop scaled back up
    NAME+knn:k=10:t=0.05:a=0.6
                        + a x the softmax(cos / t)-weighted mean caption embedding of the k training pictures whose
                        pooled tower features are nearest (the probe behind mmembed/neighbour_captions.py; its memory
                        comes from `--bank`, written by `--build-bank`)

    python scripts/image_embedding_probes.py --build-bank MODEL CONFIG.toml BANK.pt      # the training pictures
    python scripts/image_embedding_probes.py --bank BANK.pt eval -m MODEL -m "MODEL+knn:a=0.6" -t t2i ...
"""
from __future__ import annotations

import sys

import numpy as np
import torch

import mmembed
import mmembed.evaluation.encoders as encoders
import mmembed.registry as registry
from mmembed.model import MMEmbedModel

_load, _features, _check = mmembed.load, MMEmbedModel.image_features, encoders.check_encoder_name
BANK: dict = {}


def build_bank(model_name: str, recipe: str, out: str) -> None:
    """Every training picture of a read-out recipe's sources: pooled tower features and the model's mean embedding of
    8 of its captions (seed 1), as the feature read-out samples them."""
    from mmembed.training.config import TrainConfig
    from mmembed.training.readout import readout_fit_data
    from mmembed.training.setup import build_sources

    sources, _ = build_sources(TrainConfig.from_toml(recipe))
    model = mmembed.load(model_name)
    data = readout_fit_data(model, sources, captions_per_image=8, seed=1, image_embeddings=False, progress=True)
    values = torch.stack([torch.nn.functional.normalize(data.text_emb[r].mean(0), dim=-1) for r in data.caption_rows])
    torch.save({"features": data.features, "text": values}, out)


def _tta_features(self, pixels):
    variant = getattr(self, "_probe", "")
    maps = [_features(self, pixels)]  # (n, c, h, w)
    if "flip" in variant:
        maps.append(_features(self, pixels.flip(-1)).flip(-1))  # mirrored back, so positions line up
    if "zoom" in variant:
        s = pixels.shape[-1]
        c = round(s * 0.125)
        crop = torch.nn.functional.interpolate(pixels[..., c:s - c, c:s - c], size=(s, s), mode="bilinear")
        maps.append(_features(self, crop))
    return torch.stack(maps).mean(0)


def _with_neighbours(model, opts: dict) -> None:
    base = model.encode_image
    k, t, a = int(opts.get("k", 10)), float(opts.get("t", 0.05)), float(opts.get("a", 0.3))
    unit = torch.nn.functional.normalize(BANK["features"].float(), dim=-1)
    mean = unit.mean(0)
    keys, values = torch.nn.functional.normalize(unit - mean, dim=-1), BANK["text"].float()

    def encode_image(images, batch_size=32, role="document", **kw):
        e = torch.from_numpy(np.asarray(base(images, batch_size=batch_size, role=role, **kw))).float()
        looks = torch.from_numpy(np.asarray(model.encode_appearance(images, batch_size=batch_size))).float()
        top = (torch.nn.functional.normalize(looks - mean, dim=-1) @ keys.T).topk(k, dim=-1)
        mixed = ((top.values / t).softmax(-1).unsqueeze(-1) * values[top.indices]).sum(1)
        return torch.nn.functional.normalize(e + a * mixed, dim=-1).numpy()

    model.encode_image = encode_image


def load(name=None):
    if not name or "+" not in str(name):
        return _load(name)
    base, variant = str(name).split("+", 1)
    model = _load(base)
    model.config.name = str(name)  # the eval tells encoders apart by name
    kind, *opts = variant.split(":")
    if kind == "knn":
        _with_neighbours(model, dict(o.split("=", 1) for o in opts))
    else:
        model._probe = kind
    return model


def main(argv: list[str]) -> None:
    if argv[:1] == ["--build-bank"]:
        build_bank(*argv[1:4])
        return
    if argv[:1] == ["--bank"]:
        BANK.update(torch.load(argv[1]))
        argv = argv[2:]
    mmembed.load = registry.load = load
    MMEmbedModel.image_features = _tta_features
    encoders.check_encoder_name = lambda n: _check(n.split("+")[0])
    from mmembed.cli import app

    app(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
