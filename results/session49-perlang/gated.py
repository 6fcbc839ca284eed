"""A dev experiment, not package code: 48b's text -> picture lookup restricted by the caption keys' languages, run
through `mmembed eval` in this process (the lookup patched in; the key languages rebuilt from the recipe as its build
drew them, since the adapter does not store them). Two rules, by the model name's suffix:
  -gl  a text's 5 keys all in the language of its nearest key (its own language, found without a language id);
  -gp  a text whose nearest key is in one of 47b's 52 languages looks only at keys in those 52; others at all 151.

    python results/session49-perlang/gated.py eval -m runs/export-48b-gl -m runs/export-48b-gp -m runs/export-48b ...
"""
import sys

import torch

import mmembed
from mmembed import neighbour_pictures
from mmembed.cli import app
from mmembed.training.config import TrainConfig
from mmembed.training.neighbours import caption_keys
from mmembed.training.readout import readout_pictures
from mmembed.training.setup import build_sources

RECIPE = "configs/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-all-fp16-perlang.toml"
cfg = TrainConfig.from_toml(RECIPE)
sources, _ = build_sources(cfg)
memory = cfg.neighbour_captions
found = caption_keys(sources, readout_pictures(sources, memory.captions_per_image, cfg.seed), memory.text_langs,
                     cfg.seed, memory.text_key_draw)
lang_index = {lang: i for i, lang in enumerate(memory.text_langs)}
KEY_LANG = torch.tensor([lang_index[lang] for lang in found.langs])  # (M,) index into text_langs
PRIMARY = 52  # 47b's languages are the first 52 of text_langs

plain_mix = neighbour_pictures.NeighbourPictures.mix


def gated_mix(self, text_emb, k, temperature, tied="any"):
    rule = getattr(self, "gate", None)
    if rule is None:
        return plain_mix(self, text_emb, k, temperature, tied)
    key = torch.nn.functional.normalize((text_emb.float() - self.key_mean) @ self.key_basis.float(), dim=-1)
    scores = neighbour_pictures.scaled_scores(key, self.keys, self.key_scale)  # (n, M)
    nearest_lang = KEY_LANG[scores.argmax(dim=-1)]  # (n,)
    if rule == "gl":
        allowed = KEY_LANG.unsqueeze(0) == nearest_lang.unsqueeze(1)  # (n, M)
    else:
        primary = (nearest_lang < PRIMARY).unsqueeze(1)  # (n, 1)
        allowed = ~primary | (KEY_LANG < PRIMARY).unsqueeze(0)
    top = scores.masked_fill(~allowed, float("-inf")).topk(k, dim=-1)
    weights = (top.values / temperature).softmax(dim=-1)
    coeffs = neighbour_pictures.scaled_rows(self.pictures, self.picture_scale, self.key_picture[top.indices].long())
    values = coeffs @ self.picture_basis.float().T + self.picture_mean
    return torch.nn.functional.normalize((weights.unsqueeze(-1) * values).sum(dim=1), dim=-1)


plain_load = mmembed.load


def load(name=None):
    model = plain_load(name)
    for rule in ("gl", "gp"):
        if model.name.endswith("-" + rule):
            assert len(model.neighbour_captions.texts.keys) == len(KEY_LANG)
            model.neighbour_captions.texts.gate = rule
    return model


neighbour_pictures.NeighbourPictures.mix = gated_mix
mmembed.load = load
app(sys.argv[1:])
