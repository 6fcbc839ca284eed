"""A dev experiment, not package code: 48b's model with 47b's key languages (52) where EVERY caption of a picture in
a language is a key (359,399 keys) instead of one randomly drawn caption per picture and language (153,888): no
draw. Needs every text in the cache (meankeys.py embeds them).

    python results/session50-keybasis/allkeys.py        # writes runs/export-50-all52
"""
import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmembed.neighbour_pictures import NeighbourPictures, int8_rows, principal_basis
from mmembed.serialization import load_model, save_model
from mmembed.training.config import TrainConfig
from mmembed.training.readout import plain_text_embeddings, readout_pictures
from mmembed.training.setup import build_sources

RECIPE = "configs/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-all-fp16-perlang.toml"
BASE, CACHE = Path("runs/export-48b"), Path("runs/cache-48b-key-texts.safetensors")
CACHE_TEXTS = Path("runs/cache-48b-key-texts.txt")  # written by draws.py
PRIMARY = 52

torch.set_num_threads(2)
cfg = TrainConfig.from_toml(RECIPE)
sources, _ = build_sources(cfg)
memory = cfg.neighbour_captions
pictures = readout_pictures(sources, memory.captions_per_image, cfg.seed)
langs = list(memory.text_langs[:PRIMARY])
by_anchor: dict = {}
for src in sources:  # as caption_keys gathers them: every caption of each picture in each language
    for concept in src.concepts:
        for lang, pairs in src.by_concept[concept].items():
            if lang in langs:
                for pair in pairs:
                    anchor = pair.image if pair.image is not None else pair.features
                    if anchor is not None:
                        by_anchor.setdefault(anchor, {}).setdefault(lang, set()).add(pair.positive)
keys = []  # (picture row, sorted captions), in caption_keys' order: pictures, then languages
for row, picture in enumerate(pictures):
    captions = by_anchor.get(picture.image if picture.image is not None else picture.features, {})
    keys += [(row, sorted(captions[lang])) for lang in langs if captions.get(lang)]
cached = [json.loads(line) for line in CACHE_TEXTS.read_text().splitlines()]
emb = load_file(str(CACHE))["emb"]
row_of = {t: i for i, t in enumerate(cached)}
missing = sorted({t for _, texts in keys for t in texts} - set(row_of))
print(len(keys), "keys,", sum(len(t) for _, t in keys), "captions,", len(missing), "texts to embed", flush=True)
model = load_model(BASE)
if missing:
    t0 = time.time()
    new = plain_text_embeddings(model, missing, progress=True).half()
    print(f"embedded in {time.time() - t0:.0f} s", flush=True)
    emb, cached = torch.cat([emb, new]), cached + missing
    save_file({"emb": emb}, str(CACHE) + ".tmp")
    CACHE_TEXTS.with_suffix(".tmp").write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in cached))
    os.replace(str(CACHE) + ".tmp", CACHE)
    os.replace(CACHE_TEXTS.with_suffix(".tmp"), CACHE_TEXTS)
    row_of = {t: i for i, t in enumerate(cached)}
unit = torch.nn.functional.normalize(emb.float(), dim=-1)
key_emb = unit[torch.tensor([row_of[t] for _, texts in keys for t in texts])]  # (M, D) every caption a key
key_rows = [r for r, texts in keys for _ in texts]
out = load_model(BASE)
texts = out.neighbour_captions.texts
table = NeighbourPictures(key_emb.shape[1], texts.pictures.shape[0], len(key_emb), texts.key_basis.shape[1],
                          texts.picture_basis.shape[1])
mean = key_emb.mean(dim=0)
basis = principal_basis(key_emb - mean, texts.key_basis.shape[1]).half()
stored, scale = int8_rows(torch.nn.functional.normalize((key_emb - mean) @ basis.float(), dim=-1))
for name in ("picture_mean", "picture_basis", "pictures", "picture_scale"):
    setattr(table, name, getattr(texts, name))
table.key_mean, table.key_basis, table.keys, table.key_scale = mean, basis, stored, scale
table.key_picture = torch.tensor(key_rows, dtype=torch.int32)
out.neighbour_captions.texts = table
out.config.neighbour_captions.text_size = len(key_emb)
out.config.neighbour_captions.text_langs = tuple(langs)
out.config.neighbour_captions.text_key_draw = "joint"
out.config.name = f"{out.config.name}-all52"
save_model(out, "runs/export-50-all52", card_extra="dev experiment: 48b's model, 47b's key languages, every caption a key")
print("saved", len(key_emb), "keys", flush=True)
