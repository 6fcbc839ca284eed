"""Which caption keys a recipe draws, without building anything: 47b's (joint draw over its 52 languages), 48a's
(joint draw over 151) and 48b's (per-language draw over 151); how many of 47b's each keeps, and the keys of one picture.

    python results/session49-perlang/keys.py configs/gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-all-fp16-perlang.toml [ROW]
"""
import sys

from mmembed.training.config import TrainConfig
from mmembed.training.neighbours import caption_keys
from mmembed.training.readout import readout_pictures
from mmembed.training.setup import build_sources

cfg = TrainConfig.from_toml(sys.argv[1])
row = int(sys.argv[2]) if len(sys.argv) > 2 else 302  # 302: the red apple emoji
sources, _ = build_sources(cfg)
memory = cfg.neighbour_captions
pictures = readout_pictures(sources, memory.captions_per_image, cfg.seed)
langs = list(memory.text_langs)
draws = {"47b": caption_keys(sources, pictures, langs[:52], cfg.seed, "joint"),
         "48a": caption_keys(sources, pictures, langs, cfg.seed, "joint"),
         "48b": caption_keys(sources, pictures, langs, cfg.seed, "per_language")}
by_key = {name: {(r, lang): t for t, r, lang in zip(k.texts, k.rows, k.langs)} for name, k in draws.items()}
print(len(pictures), "pictures")
for name, keys in by_key.items():
    kept = sum(keys.get(k) == t for k, t in by_key["47b"].items())
    print(name, len(keys), "keys;", kept, "of 47b's", len(by_key["47b"]), "kept;", "picture", row, "en/de/fr/es:",
          [keys.get((row, lang)) for lang in ("en", "de", "fr", "es")])

# keys one text shares: pictures with the same caption key in a language tie exactly for a query (one embedding each)
keys = draws["48b"]
shared = {}
for text, lang in zip(keys.texts, keys.langs):
    shared[(lang, text)] = shared.get((lang, text), 0) + 1
print("48b:", len(shared), "distinct (language, text) of", len(keys.texts), "keys;",
      sum(n for n in shared.values() if n > 5), "keys share their text with more than 5 other pictures;",
      "most shared:", sorted(shared.items(), key=lambda kv: -kv[1])[:8])
