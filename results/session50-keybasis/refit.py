"""A dev experiment, not package code: 48b's caption-key table refitted with its principal directions (and mean)
fitted over another set of rows, everything else of 48b unchanged, each saved as an export folder for `mmembed eval`.
The keys' embeddings (plain text path of 48b's export, one per distinct text) are computed once and cached.

    python results/session50-keybasis/refit.py            # writes runs/export-50-{all,distinct,judged,distinct-judged}

  all              fitted over every key, as the build does (a check: ~48b's stored table)
  distinct         fitted over each distinct key text once (a text keyed to 300 pictures counts once, not 300 times)
  judged           fitted over the keys in 47b's 52 languages only (the other 99 languages' keys projected on them)
  distinct-judged  both
"""
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmembed.neighbour_pictures import int8_rows, principal_basis
from mmembed.serialization import load_model, save_model
from mmembed.training.config import TrainConfig
from mmembed.training.neighbours import caption_keys
from mmembed.training.readout import plain_text_embeddings, readout_pictures
from mmembed.training.setup import build_sources

RECIPE = "configs/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-all-fp16-perlang.toml"
BASE, CACHE = Path("runs/export-48b"), Path("runs/cache-48b-key-texts.safetensors")
PRIMARY = 52  # 47b's languages are the first 52 of text_langs

torch.set_num_threads(2)
cfg = TrainConfig.from_toml(RECIPE)
sources, _ = build_sources(cfg)
memory = cfg.neighbour_captions
found = caption_keys(sources, readout_pictures(sources, memory.captions_per_image, cfg.seed), memory.text_langs,
                     cfg.seed, memory.text_key_draw)
distinct = sorted(set(found.texts))
print(len(found.texts), "keys,", len(distinct), "distinct texts", flush=True)
model = load_model(BASE)
if CACHE.exists():
    emb = load_file(str(CACHE))["emb"].float()
else:
    t0 = time.time()
    emb = plain_text_embeddings(model, distinct, progress=True)
    save_file({"emb": emb.half()}, str(CACHE))
    print(f"embedded in {time.time() - t0:.0f} s", flush=True)
    emb = emb.half().float()
row = {t: i for i, t in enumerate(distinct)}
key_text = torch.tensor([row[t] for t in found.texts])  # (M,) the distinct text of each key
keys = torch.nn.functional.normalize(emb, dim=-1)[key_text]  # (M, D)
primary = set(memory.text_langs[:PRIMARY])
judged = torch.tensor([lang in primary for lang in found.langs])  # (M,)
first = torch.zeros(len(distinct), dtype=torch.long).scatter_(0, key_text.flip(0), torch.arange(len(key_text)).flip(0))
once = torch.zeros(len(keys), dtype=torch.bool)
once[first] = True  # (M,) the first key of each distinct text
texts = model.neighbour_captions.texts
p = texts.key_basis.shape[1]
fits = {"all": torch.ones(len(keys), dtype=torch.bool), "distinct": once, "judged": judged, "distinct-judged": once & judged}
for variant in sys.argv[1:] or list(fits):
    rows = keys[fits[variant]]
    mean = rows.mean(dim=0)
    basis = principal_basis(rows - mean, p).half()
    stored, scale = int8_rows(torch.nn.functional.normalize((keys - mean) @ basis.float(), dim=-1))
    if variant == "all":
        print("all vs 48b's stored table: mean max|diff|", float((mean - texts.key_mean).abs().max()),
              "keys equal", float((stored == texts.keys).float().mean()), flush=True)
    out = load_model(BASE)
    t = out.neighbour_captions.texts
    t.key_mean, t.key_basis, t.keys, t.key_scale = mean, basis, stored, scale
    out.config.name = f"{model.config.name}-basis-{variant}"
    save_model(out, f"runs/export-50-{variant}", card_extra=f"dev experiment: 48b, key basis fitted over '{variant}'")
    print("saved", variant, int(fits[variant].sum()), "rows fitted", flush=True)
