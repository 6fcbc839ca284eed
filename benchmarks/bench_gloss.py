"""Query glossing's cost per search: the same text queries with and without `query_lang`, in one process.

    flock /tmp/mmembed-heavy.lock python benchmarks/bench_gloss.py [--model NAME] [--repeats 3]

A glossed query embeds its English gloss too (mmembed/glossary.py); both go through the model in one call, so the
extra cost is one more sequence in the batch. The dictionaries are loaded (and cached) before timing.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import mmembed
from mmembed.glossary import glossary_for
from mmembed.search.collection import Collection

QUERIES = [("mbwa mkubwa", "sw"), ("ndizi", "sw"), ("ein kleiner Hund", "de"), ("rotes Auto", "de"),
           ("कुत्ता", "hi"), ("كلب أسود", "ar"), ("une voiture rouge", "fr"), ("дом с садом", "ru")]
DOCUMENTS = ["dog", "cat", "banana", "a big tree", "house", "a red car", "a black dog", "a house with a garden"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model name (default: the default model)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over the queries; the best is printed")
    args = ap.parse_args()

    model = mmembed.load(args.model)
    col = Collection(os.path.join(tempfile.mkdtemp(), "c.lance"), model=model)
    col.add_texts(DOCUMENTS * 10, language="en")
    for lang in {lang for _, lang in QUERIES}:
        glossary_for(lang)
    col.search("warm-up", k=5)
    best = {"plain": float("inf"), "glossed": float("inf")}
    for _ in range(args.repeats):
        for how in best:
            t0 = time.perf_counter()
            for query, lang in QUERIES * 5:
                col.search(query, k=5, query_lang=lang if how == "glossed" else None)
            best[how] = min(best[how], (time.perf_counter() - t0) / (len(QUERIES) * 5))
    print(f"query glossing, model {model.name}, {len(QUERIES) * 5} queries x {args.repeats} passes (best), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"plain {1000 * best['plain']:.1f} ms/query, glossed {1000 * best['glossed']:.1f} ms/query, "
          f"ratio {best['glossed'] / best['plain']:.2f}")


if __name__ == "__main__":
    main()
