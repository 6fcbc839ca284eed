"""In which languages the caption keys a query finds are: for dev emoji names in a few judged languages, the share of
each text's 5 nearest keys (what it borrows pictures by) written in the query's own language, in 47b (keys in 52
languages) and in a 151-language stage. Rebuilds the key order of each recipe (caption_keys, as the build did).

    python results/session49-perlang/key_langs.py runs/export-48b configs/<48b>.toml
"""
import sys

import torch

import mmembed
from mmembed.data.manifest import read_manifest
from mmembed.neighbour_pictures import scaled_scores
from mmembed.training.config import TrainConfig
from mmembed.training.neighbours import caption_keys
from mmembed.training.readout import readout_pictures
from mmembed.training.setup import build_sources

B = "gemma3-270m-mm-lora-cpu-bitext-distill-all-joint-img-readout-roles-ui4-soup-neighbours-"
stages = {"47b": (B + "texts52", f"configs/{B}texts52.toml"), "new": (sys.argv[1], sys.argv[2])}
queries = {}
for r in read_manifest("data/build/emoji/dev.jsonl"):
    if r.lang in ("de", "hi", "sw", "ja") and len(queries.setdefault(r.lang, [])) < 100 and r.caption not in queries[r.lang]:
        queries[r.lang].append(r.caption)
for name, (model_name, recipe) in stages.items():
    cfg = TrainConfig.from_toml(recipe)
    sources, _ = build_sources(cfg)
    memory = cfg.neighbour_captions
    keys = caption_keys(sources, readout_pictures(sources, memory.captions_per_image, cfg.seed), memory.text_langs,
                        cfg.seed, memory.text_key_draw)
    model = mmembed.load(model_name)
    table = model.neighbour_captions.texts
    assert len(keys.langs) == len(table.keys), (len(keys.langs), len(table.keys))
    for lang, texts in queries.items():
        emb = torch.from_numpy(model.encode_text(texts))
        key = torch.nn.functional.normalize((emb - table.key_mean) @ table.key_basis.float(), dim=-1)
        top = scaled_scores(key, table.keys, table.key_scale).topk(5, dim=-1).indices
        own = sum(keys.langs[i] == lang for i in top.flatten().tolist()) / top.numel()
        print(name, lang, f"own-language share of the 5 nearest keys: {own:.2f}")
