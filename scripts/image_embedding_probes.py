"""Probes of inference-time changes to image embeddings, scored by `mmembed eval` without saving a model: a model
named NAME+VARIANT loads NAME and changes how it embeds images. Session 44 (results/session44-neighbours):

    NAME+flip           tower feature maps averaged over the image and its mirror (test-time augmentation)
    NAME+flipzoom       ... and a 0.75 centre crop scaled back up
    NAME+knn:k=10:t=0.05:a=0.6
                        + a x the softmax(cos / t)-weighted mean caption embedding of the k training pictures whose
                        pooled tower features are nearest (the probe behind mmembed/neighbour_captions.py; its memory
                        comes from `--bank`, written by `--build-bank`)

    NAME+text:w=1.0:k=5:t=0.02
                        session 45: a model whose neighbour-caption memory has a picture table (text_weight > 0)
                        scored with another text weight, text_k and text_temperature (w=0: texts untouched)
    NAME+values8        session 46: the neighbour-caption memory's values (fp16, 9.1 MB in 46b) rounded to int8 with a
                        scale per row, as storing them so would (room for caption keys in more languages)
    NAME+text:lang=1    session 46: a text's k keys drawn from the language of its nearest key alone (the key
                        languages are recomputed from the recipe in MMEMBED_PROBE_RECIPE, as the trainer picked them)

    python scripts/image_embedding_probes.py --build-bank MODEL CONFIG.toml BANK.pt      # the training pictures
    python scripts/image_embedding_probes.py --bank BANK.pt eval -m MODEL -m "MODEL+knn:a=0.6" -t t2i ...
"""
from __future__ import annotations

import dataclasses
import sys

import torch

import mmembed
import mmembed.evaluation.encoders as encoders
import mmembed.registry as registry
from mmembed.config import NeighbourCaptionsConfig
from mmembed.model import MMEmbedModel
from mmembed.neighbour_pictures import scaled_rows, scaled_scores

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
    """The model's own component (mmembed/neighbour_captions.py) on the bank: every channel for the keys, one weight
    for both roles. (The session-44 sweep ran an fp32 copy of this arithmetic before the component existed; the
    component stores keys and values in fp16.)"""
    model.config.neighbour_captions = NeighbourCaptionsConfig(
        weight=float(opts.get("a", 0.3)), query_weight=None, k=int(opts.get("k", 10)),
        temperature=float(opts.get("t", 0.05)), key_dims=0)
    model.add_neighbour_captions()
    model.neighbour_captions.fill(BANK["features"], BANK["text"])


def _text_side(model, opts: dict) -> None:
    memory = model.neighbour_captions
    if memory is None or memory.cfg.text_weight <= 0:
        raise SystemExit(f"{model.name}: +text needs a memory built with text_weight > 0 (a picture table)")
    memory.cfg = dataclasses.replace(memory.cfg, text_weight=float(opts.get("w", memory.cfg.text_weight)),
                                     text_k=int(opts.get("k", memory.cfg.text_k)),
                                     text_temperature=float(opts.get("t", memory.cfg.text_temperature)))
    if opts.get("lang") == "1":
        _same_language_keys(memory)


@torch.no_grad()
def _int8_values(memory) -> None:
    if memory.cfg.memory_bits == 8:
        raise ValueError("+values8: this model's memory is stored as int8 already (memory_bits = 8)")
    values = memory.values.float()  # (N, D) unit rows
    scale = values.abs().amax(dim=-1, keepdim=True) / 127
    rounded = (values / scale).round().clamp(-127, 127) * scale
    memory.values.copy_(torch.nn.functional.normalize(rounded, dim=-1).to(memory.values.dtype))


def key_languages(recipe: str, langs) -> torch.Tensor:
    """(M,) index into `langs` of each caption key, as mmembed.training.neighbours.caption_keys made them."""
    from mmembed.training.config import TrainConfig
    from mmembed.training.neighbours import caption_keys
    from mmembed.training.readout import readout_pictures
    from mmembed.training.setup import build_sources

    cfg = TrainConfig.from_toml(recipe)
    sources, _ = build_sources(cfg)
    pictures = readout_pictures(sources, cfg.neighbour_captions.captions_per_image, cfg.seed)
    keys = caption_keys(sources, pictures, langs, cfg.seed)
    return torch.tensor([list(langs).index(lang) for lang in keys.langs])


def _same_language_keys(memory) -> None:
    import os

    table = memory.texts
    lang = key_languages(os.environ["MMEMBED_PROBE_RECIPE"], memory.cfg.text_langs)
    if len(lang) != len(table.keys):
        raise SystemExit(f"recomputed {len(lang)} key languages for {len(table.keys)} keys: another recipe?")

    def mix(text_emb, k, temperature):
        key = torch.nn.functional.normalize((text_emb.float() - table.key_mean) @ table.key_basis.float(), dim=-1)
        sims = scaled_scores(key, table.keys, table.key_scale)  # (n, M)
        first = lang[sims.argmax(dim=-1)]  # (n,) language of each text's nearest key
        sims = sims.masked_fill(lang.unsqueeze(0) != first.unsqueeze(1), float("-inf"))
        top = sims.topk(min(k, len(table.keys)), dim=-1)
        weights = (top.values / temperature).softmax(dim=-1)
        rows = table.key_picture[top.indices].long()
        coeffs = scaled_rows(table.pictures, table.picture_scale, rows)
        values = coeffs @ table.picture_basis.float().T + table.picture_mean
        return torch.nn.functional.normalize((weights.unsqueeze(-1) * values).sum(dim=1), dim=-1)

    table.mix = mix


def load(name=None):
    if not name or "+" not in str(name):
        return _load(name)
    base, variant = str(name).split("+", 1)
    model = _load(base)
    model.config.name = str(name)  # the eval tells encoders apart by name
    kind, *opts = variant.split(":")
    if kind == "knn":
        _with_neighbours(model, dict(o.split("=", 1) for o in opts))
    elif kind == "text":
        _text_side(model, dict(o.split("=", 1) for o in opts))
    elif kind == "values8":
        _int8_values(model.neighbour_captions)
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
