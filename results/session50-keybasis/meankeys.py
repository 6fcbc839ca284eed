"""A dev experiment, not package code: 48b's model with 47b's key languages (52) where each picture's key in a
language is the mean of ALL its captions in that language (unit embeddings averaged, then normalised) instead of one
randomly drawn caption: no draw, so no draw-to-draw noise (section 2 of the README: +-1.5-3 points). Same number of
keys as 47b (one per picture and language). Everything else is 48b's (common.py).

    python results/session50-keybasis/meankeys.py        # writes runs/export-50-mean52
"""
import torch

from common import PRIMARY, caption_keys, cfg, embedded, memory, pictures, save_with_keys, sources

langs = memory.text_langs[:PRIMARY]
every = caption_keys(sources, pictures, langs, cfg.seed, "all")  # grouped by picture, then language
pairs = list(zip(every.rows, every.langs))
owner = torch.tensor([0] + [int(a != b) for a, b in zip(pairs, pairs[1:])]).cumsum(0)  # (captions,) -> its key
rows = [r for i, r in enumerate(every.rows) if i == 0 or pairs[i] != pairs[i - 1]]
print(len(rows), "keys,", len(every.texts), "captions", flush=True)
row, unit = embedded(every.texts)
summed = torch.zeros(len(rows), unit.shape[1]).index_add_(0, owner, unit[[row[t] for t in every.texts]])
save_with_keys(torch.nn.functional.normalize(summed, dim=-1), rows, langs, "mean52",
               "48b's model, 47b's key languages, mean keys")
