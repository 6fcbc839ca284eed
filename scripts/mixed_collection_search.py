"""A text query in a collection of texts AND pictures: the right picture's place with the plain query vector against
the two-sided search (mmembed/search/facing.py: image rows ranked by the query against images), in one process.

    flock /tmp/mmembed-heavy.lock python scripts/mixed_collection_search.py [--data data/build/emoji] [--split dev]
        [--texts data/build/gettext-ui] [--concepts 60] [--num-texts 1000]

The collection holds one picture per concept of the split and `--num-texts` sentences (distractor text rows); the
queries are each concept's names in the ten judged languages. Prints, per way of searching, R@1 / R@10 of the right
picture over the whole merged ranking, the share of image hits in the top 10, and ms per query.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import mmembed
from mmembed.search.collection import Collection
from mmembed.search.documents import Document

LANGS = ("en", "de", "fr", "es", "zh", "ja", "ar", "hi", "sw", "ru")


def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default="data/build/emoji")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--texts", default="data/build/gettext-ui")
    ap.add_argument("--concepts", type=int, default=60)
    ap.add_argument("--num-texts", type=int, default=1000)
    args = ap.parse_args()

    data = Path(args.data)
    rows = [r for r in read_rows(data / f"{args.split}.jsonl") if r.get("kind", "name") == "name" and r["lang"] in LANGS]
    concepts = sorted({r["concept"] for r in rows})
    rng = np.random.default_rng(0)
    chosen = sorted(rng.choice(concepts, size=min(args.concepts, len(concepts)), replace=False))
    image_of = {r["concept"]: str(data / r["image"]) for r in rows if r["concept"] in set(chosen)}
    queries = list(dict.fromkeys((r["caption"], r["lang"], r["concept"]) for r in rows if r["concept"] in image_of))
    texts = list(dict.fromkeys(r["text"] for r in read_rows(Path(args.texts) / f"{args.split}.jsonl")))[:args.num_texts]

    model = mmembed.load(args.model)
    col = Collection(os.path.join(tempfile.mkdtemp(), "mixed.lance"), model=model, appearance=False)
    col.add([Document(id=c, kind="image", image=p) for c, p in image_of.items()])
    col.add([Document(id=f"text-{i}", kind="text", text=t, language="en") for i, t in enumerate(texts)])
    print(f"model {model.name}; collection: {len(image_of)} pictures ({data.name} {args.split}) + {len(texts)} texts; "
          f"{len(queries)} queries in {len(LANGS)} languages; facing: {col.texts_against()}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    col.search("warm-up", k=10)
    ways = {"plain (one vector)": lambda q: col.search_vector(col.query_vector(q), k=200),
            "two-sided (search)": lambda q: col.search(q, k=200),
            "pictures alone (kind)": lambda q: col.search(q, k=200, kind="image")}
    for name, run in ways.items():
        ranks, images_top10, t0 = [], [], time.perf_counter()
        for caption, _, concept in queries:
            ids = [(h.document.id, h.document.kind) for h in run(caption)]
            ranks.append(next((i for i, (d, _) in enumerate(ids) if d == concept), 10**6))
            images_top10.append(sum(k == "image" for _, k in ids[:10]))
        ms = 1000 * (time.perf_counter() - t0) / len(queries)
        ranks = np.array(ranks)
        print(f"{name:24s} R@1 {100 * np.mean(ranks < 1):5.1f}  R@10 {100 * np.mean(ranks < 10):5.1f}  "
              f"images in top 10 {np.mean(images_top10):4.1f}  {ms:6.1f} ms/query")


if __name__ == "__main__":
    main()
