"""A dev experiment, not package code: 48b's model with 47b's key set (a joint draw over 47b's 52 languages) drawn
with seed 0 (47b's own keys) and other seeds, to see how much of 47b's dev lead over 48b is its draw. Each table is
fitted as the build fits it (every key); everything else is 48b's. Texts missing from refit.py's cache are embedded
by 48b's plain text path and added to it.

    python results/session50-keybasis/draws.py 0 1 2     # writes runs/export-50-d52-s{0,1,2}
"""
import json
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmembed.neighbour_pictures import NeighbourPictures, int8_rows, principal_basis
from mmembed.serialization import load_model, save_model
from mmembed.training.config import TrainConfig
from mmembed.training.neighbours import caption_keys
from mmembed.training.readout import plain_text_embeddings, readout_pictures
from mmembed.training.setup import build_sources

RECIPE = "configs/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-all-fp16-perlang.toml"
BASE, CACHE = Path("runs/export-48b"), Path("runs/cache-48b-key-texts.safetensors")
REFIT_TEXTS = Path("runs/cache-48b-key-texts.txt")  # the cache's texts, one JSON string per line
PRIMARY = 52

torch.set_num_threads(2)
cfg = TrainConfig.from_toml(RECIPE)
sources, _ = build_sources(cfg)
memory = cfg.neighbour_captions
pictures = readout_pictures(sources, memory.captions_per_image, cfg.seed)
seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2]
draws = {s: caption_keys(sources, pictures, memory.text_langs[:PRIMARY], s, "joint") for s in seeds}
model = load_model(BASE)
if REFIT_TEXTS.exists():
    cached = [json.loads(line) for line in REFIT_TEXTS.read_text().splitlines()]
else:  # refit.py's cache: 48b's distinct key texts, sorted
    found = caption_keys(sources, pictures, memory.text_langs, cfg.seed, memory.text_key_draw)
    cached = sorted(set(found.texts))
emb = load_file(str(CACHE))["emb"]
assert len(cached) == len(emb), (len(cached), len(emb))
row = {t: i for i, t in enumerate(cached)}
missing = sorted({t for d in draws.values() for t in d.texts} - set(row))
print(len(missing), "texts to embed", flush=True)
if missing:
    t0 = time.time()
    new = plain_text_embeddings(model, missing, progress=True).half()
    print(f"embedded in {time.time() - t0:.0f} s", flush=True)
    emb, cached = torch.cat([emb, new]), cached + missing
    save_file({"emb": emb}, str(CACHE) + ".tmp")
    REFIT_TEXTS.with_suffix(".tmp").write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in cached))
    os.replace(str(CACHE) + ".tmp", CACHE)
    os.replace(REFIT_TEXTS.with_suffix(".tmp"), REFIT_TEXTS)
    row = {t: i for i, t in enumerate(cached)}
unit = torch.nn.functional.normalize(emb.float(), dim=-1)
for seed, found in draws.items():
    keys = unit[torch.tensor([row[t] for t in found.texts])]  # (M, D)
    out = load_model(BASE)
    texts = out.neighbour_captions.texts
    table = NeighbourPictures(keys.shape[1], texts.pictures.shape[0], len(keys), texts.key_basis.shape[1],
                              texts.picture_basis.shape[1])
    mean = keys.mean(dim=0)
    basis = principal_basis(keys - mean, texts.key_basis.shape[1]).half()
    stored, scale = int8_rows(torch.nn.functional.normalize((keys - mean) @ basis.float(), dim=-1))
    for name in ("picture_mean", "picture_basis", "pictures", "picture_scale"):
        setattr(table, name, getattr(texts, name))
    table.key_mean, table.key_basis, table.keys, table.key_scale = mean, basis, stored, scale
    table.key_picture = torch.tensor(found.rows, dtype=torch.int32)
    out.neighbour_captions.texts = table
    out.config.neighbour_captions.text_size = len(keys)
    out.config.neighbour_captions.text_langs = tuple(memory.text_langs[:PRIMARY])
    out.config.neighbour_captions.text_key_draw = "joint"
    out.config.name = f"{out.config.name}-d52-s{seed}"
    save_model(out, f"runs/export-50-d52-s{seed}", card_extra=f"dev experiment: 48b's model, 47b's key languages, seed {seed}")
    print("saved seed", seed, len(keys), "keys", flush=True)
