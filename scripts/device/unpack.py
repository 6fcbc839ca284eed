"""Rebuild the converted Gemma cache from the int8 transport copy (device only; not shipped)."""
import json, lzma, shutil, sys, time
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
sys.path.insert(0, '.')
from mmembed.assets import sha256_file, MANIFEST, _write_sentencepiece
st = Path('/tmp/st')
packed = load_file(str(st / 'w' / 'packed.safetensors'))
sd = {}
for k in [k for k in packed if not k.endswith('.s') and k != 'embed_ids']:
    if k.endswith('.q'):
        name = k[:-2]
        q = packed[k].float(); s = packed[name + '.s'].float()
        g = q.numel() // s.numel()
        sd[name] = (q.reshape(-1, g) * s[:, None]).reshape(q.shape).bfloat16()
    else:
        sd[k] = packed[k]
ids = packed['embed_ids'].long()
full = torch.zeros(262144, 640, dtype=torch.bfloat16)
full[ids] = sd['model.embed_tokens.weight']
sd['model.embed_tokens.weight'] = full
out = Path('/tmp/mmhome/backbones/gemma3-270m'); out.mkdir(parents=True, exist_ok=True)
save_file(sd, str(out / 'model.safetensors'), metadata={'format': 'pt'})
for f in ['config.json', 'generation_config.json', 'tokenizer_config.json', 'SOURCE.txt']:
    shutil.copy(st / 'w' / f, out / f)
(out / 'tokenizer.json').write_bytes(lzma.open(st / 'w' / 'tokenizer.json.xz').read())
_write_sentencepiece(out)  # tokenizer.model: the cache is incomplete (and rebuilt from the GGUF) without it
hashes = {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != MANIFEST}
(out / MANIFEST).write_text(json.dumps({'sha256': hashes, 'created': time.time()}, indent=1))
for xz in (st / 'data').glob('*/*.jsonl.xz'):
    xz.with_suffix('').write_bytes(lzma.open(xz).read())
print('cache rebuilt', len(sd), 'tensors')
