"""A dev experiment, not package code: 48b's model with 47b's key languages (52) where EVERY caption of a picture in
a language is a key (294,499 keys; `text_key_draw = "all"`) instead of one randomly drawn caption per picture and
language (153,888): no draw. Everything else is 48b's (common.py).

    python results/session50-keybasis/allkeys.py        # writes runs/export-50-all52
"""
from common import PRIMARY, caption_keys, cfg, embedded, memory, pictures, save_with_keys, sources

langs = memory.text_langs[:PRIMARY]
every = caption_keys(sources, pictures, langs, cfg.seed, "all")
row, unit = embedded(every.texts)
save_with_keys(unit[[row[t] for t in every.texts]], every.rows, langs, "all52",
               "48b's model, 47b's key languages, every caption a key")
