"""Does multilingual-e5-small know a language's everyday words? Word translation by nearest neighbour.

    python scripts/teacher_word_translation.py --lang sw

Each word of LANG in the freedict TRAIN split is embedded by e5 and matched against every English word of
that split (the pool: all English headwords, about 70k); a hit is a top-ranked English word that the
dictionary gives as a translation. Prints P@1 and P@5, P@1 among the most confident matches (a miner would
keep only those), and the top 5 for a few example words. Why: before distilling e5 on a word list or mining
word pairs with it, check that e5 itself translates the words. About 9 minutes on 2 CPU cores for sw (e5
embeds ~140 words/s there).
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from mmembed.data.manifest import iter_manifest
from mmembed.training.teacher import E5Teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lang", default="sw")
    ap.add_argument("--manifest", default="data/build/freedict/train.jsonl")
    ap.add_argument("--examples", default="mbwa,ndizi,mbuzi,pikipiki,nyanya,mti,paka,gari,nyumba,kitabu")
    args = ap.parse_args()

    gold: dict[str, set[str]] = defaultdict(set)
    english: set[str] = set()
    for r in iter_manifest(args.manifest):
        if r.text is None:  # an image record: not a word pair
            continue
        english.add(r.text.casefold())
        if r.lang == args.lang:
            gold[r.caption.casefold()].add(r.text.casefold())
    if not gold:
        raise SystemExit(f"{args.manifest} has no records in language {args.lang!r}")
    pool, words = sorted(english), sorted(gold)
    teacher = E5Teacher()
    pool_vecs, word_vecs = teacher.embed(pool), teacher.embed(words)

    best: list[tuple[float, bool]] = []  # (cosine of the top match, is it a translation)
    hits5 = 0
    for start in range(0, len(words), 512):
        sims = word_vecs[start:start + 512] @ pool_vecs.T
        top = np.argsort(-sims, axis=1)[:, :5]
        for k, row in enumerate(top):
            translations = gold[words[start + k]]
            best.append((float(sims[k, row[0]]), pool[row[0]] in translations))
            hits5 += any(pool[j] in translations for j in row)
    print(f"{args.lang}: {len(words)} words, pool of {len(pool)} English words")
    print(f"P@1 {100 * np.mean([hit for _, hit in best]):.1f}  P@5 {100 * hits5 / len(words):.1f}")
    best.sort(key=lambda x: -x[0])
    for share in (0.1, 0.25, 0.5):
        kept = best[: max(1, int(share * len(best)))]
        print(f"P@1 of the {share:.0%} most confident matches: {100 * np.mean([hit for _, hit in kept]):.1f}")
    for word in filter(None, args.examples.split(",")):
        sims = (teacher.embed([word]) @ pool_vecs.T)[0]
        print(word, "->", ", ".join(pool[j] for j in np.argsort(-sims)[:5]))


if __name__ == "__main__":
    main()
