import json, torch, numpy as np
from pathlib import Path
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from mmembed.assets import mmembed_home
src = mmembed_home() / 'backbones' / 'gemma3-270m'
out = Path('/tmp/gpu/payload/w'); out.mkdir(parents=True, exist_ok=True)
tok = Tokenizer.from_file(str(src / 'tokenizer.json'))
texts = json.load(open('/tmp/gpu/texts.json'))
pieces = ['This sentence : "', '" means in one word:"', 'This image : "', '" with the caption "', 'Instruct: ', '\n',
          'query', 'passage', 'Instruct: {instruction}\n']
ids = set(range(1024))
for enc in tok.encode_batch(texts + pieces, add_special_tokens=False):
    ids.update(enc.ids)
ids = torch.tensor(sorted(ids), dtype=torch.int64)
print('tokens kept', len(ids))
sd = load_file(str(src / 'model.safetensors'))
packed = {}
err = []
for k, t in sd.items():
    if k == 'model.embed_tokens.weight':
        t = t[ids]
        packed['embed_ids'] = ids.to(torch.int32)
    if t.ndim == 2:
        x = t.float()
        g = 640 if k == 'model.embed_tokens.weight' else 32  # embeddings per row, layers per 32-group
        xg = x.reshape(-1, g)
        scale = (xg.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127).half().float()
        q = torch.round(xg / scale).clamp(-127, 127).to(torch.int8)
        packed[k + '.q'] = q.reshape(x.shape)
        packed[k + '.s'] = scale.squeeze(1).half()
        rec = (q.float() * scale).reshape(x.shape).bfloat16().float()
        err.append((torch.linalg.norm(rec - x) / torch.linalg.norm(x)).item())
    else:
        packed[k] = t
print('rel err mean/max', np.mean(err), np.max(err))
save_file(packed, str(out / 'packed.safetensors'))
for f in ['config.json', 'generation_config.json', 'tokenizer_config.json', 'SOURCE.txt']:
    (out / f).write_bytes((src / f).read_bytes())
