"""A dev experiment, not package code: 48b's model with 47b's key set (a joint draw over 47b's 52 languages) drawn
with seed 0 (47b's own keys) and other seeds, to see how much of 47b's dev lead over 48b is its draw. Each table is
fitted as the build fits it (every key); everything else is 48b's (common.py).

    python results/session50-keybasis/draws.py 0 1 2     # writes runs/export-50-d52-s{0,1,2}
"""
import sys

from common import PRIMARY, caption_keys, embedded, memory, pictures, save_with_keys, sources

langs = memory.text_langs[:PRIMARY]
draws = {int(s): caption_keys(sources, pictures, langs, int(s), "joint") for s in sys.argv[1:] or (0, 1, 2)}
row, unit = embedded({t for d in draws.values() for t in d.texts})
for seed, found in draws.items():
    save_with_keys(unit[[row[t] for t in found.texts]], found.rows, langs, f"d52-s{seed}",
                   f"48b's model, 47b's key languages, seed {seed}")
