"""What the session-50 dev experiments share (not package code): 48b's recipe, pictures and model; a cache of key texts
embedded by 48b's plain text path (runs/, grown as a script needs more texts); and an export of 48b with its
caption-key table replaced by given keys."""
import json
import os
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
CACHE_TEXTS = Path("runs/cache-48b-key-texts.txt")  # the cache's texts, one JSON string per line
PRIMARY = 52  # 47b's languages are the first 52 of text_langs

torch.set_num_threads(2)
cfg = TrainConfig.from_toml(RECIPE)
sources, _ = build_sources(cfg)
memory = cfg.neighbour_captions
pictures = readout_pictures(sources, memory.captions_per_image, cfg.seed)


def embedded(texts) -> tuple[dict[str, int], torch.Tensor]:
    """Every text of `texts` in the cache (the missing ones embedded and added): (text -> row, (n, D) unit rows)."""
    if CACHE_TEXTS.exists():
        cached = [json.loads(line) for line in CACHE_TEXTS.read_text().splitlines()]
    else:  # refit.py's first cache: 48b's distinct key texts, sorted
        cached = sorted(set(caption_keys(sources, pictures, memory.text_langs, cfg.seed, memory.text_key_draw).texts))
    emb = load_file(str(CACHE))["emb"]
    assert len(cached) == len(emb), (len(cached), len(emb))
    missing = sorted(set(texts) - set(cached))
    print(len(missing), "texts to embed", flush=True)
    if missing:
        t0 = time.time()
        new = plain_text_embeddings(load_model(BASE), missing, progress=True).half()
        print(f"embedded in {time.time() - t0:.0f} s", flush=True)
        emb, cached = torch.cat([emb, new]), cached + missing
        save_file({"emb": emb}, str(CACHE) + ".tmp")
        CACHE_TEXTS.with_suffix(".tmp").write_text("\n".join(json.dumps(t, ensure_ascii=False) for t in cached))
        os.replace(str(CACHE) + ".tmp", CACHE)
        os.replace(CACHE_TEXTS.with_suffix(".tmp"), CACHE_TEXTS)
    return {t: i for i, t in enumerate(cached)}, torch.nn.functional.normalize(emb.float(), dim=-1)


def save_with_keys(key_emb: torch.Tensor, key_picture: list[int], langs, suffix: str, card: str) -> None:
    """48b with its key table replaced: (M, D) unit keys, the memory picture of each, fitted as the build fits them
    (mean and principal directions over every key); the picture side stays 48b's. Saved to runs/export-50-SUFFIX."""
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
    table.key_picture = torch.tensor(key_picture, dtype=torch.int32)
    out.neighbour_captions.texts = table
    out.config.neighbour_captions.text_size = len(key_emb)
    out.config.neighbour_captions.text_langs = tuple(langs)
    out.config.neighbour_captions.text_key_draw = "joint"
    out.config.name = f"{out.config.name}-{suffix}"
    save_model(out, f"runs/export-50-{suffix}", card_extra=f"dev experiment: {card}")
    print("saved", suffix, len(key_emb), "keys", flush=True)
