"""Filter manifests for the GPU run, letterbox clip art to 224, collect the token ids the run needs."""
import json, os, sys, lzma, shutil
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmembed.images import open_image, to_rgb, letterbox
OUT = Path('/tmp/gpu/payload/data'); OUT.mkdir(parents=True, exist_ok=True)
texts = set()
def rows(p):
    for l in open(p, encoding='utf-8'):
        yield json.loads(l)
for name in ['emoji', 'clipart', 'parallel']:
    src = Path('data/build') / name
    (OUT / name).mkdir(exist_ok=True)
    for split in ['train', 'dev']:
        kept = []
        for r in rows(src / f'{split}.jsonl'):
            if name == 'emoji' and r.get('kind') not in ('name', 'keyword'):
                continue
            if name == 'clipart' and split == 'dev':
                continue
            if name == 'clipart' and r.get('image'):
                r['image'] = str(Path(r['image']).with_suffix('.webp'))  # lossless WebP, letterboxed below
            kept.append(r)
            texts.add(r['caption'])
            if r.get('text'): texts.add(r['text'])
            if r.get('negative'): texts.add(r['negative'])
        with lzma.open(OUT / name / f'{split}.jsonl.xz', 'wt', encoding='utf-8', preset=6) as fh:
            for r in kept: fh.write(json.dumps(r, ensure_ascii=False) + '\n')
        print(name, split, len(kept), flush=True)
# images
shutil.copytree('data/build/emoji/images', OUT / 'emoji' / 'images', dirs_exist_ok=True)
imgs = {r['image'] for r in rows('data/build/clipart/train.jsonl')}
for rel in sorted(imgs):
    dst = (OUT / 'clipart' / rel).with_suffix('.webp')  # already the 224x224 the model sees: exact, 43 MB
    dst.parent.mkdir(parents=True, exist_ok=True)
    letterbox(to_rgb(open_image(Path('data/build/clipart') / rel)), 224).save(dst, 'WEBP', lossless=True, method=4)
print('clipart images', len(imgs))
json.dump(sorted(texts), open('/tmp/gpu/texts.json', 'w'), ensure_ascii=False)
print('texts', len(texts))
