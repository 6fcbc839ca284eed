"""English words paired with their translations from FreeDict's bilingual dictionaries (Debian's
dict-freedict-* packages): common nouns, verbs and adjectives in Swahili, Hindi and Arabic, the judged
languages with the least training text (`parallel` and `cldr-terms` are names; emoji keywords are few).

Each English word (or short phrase) is a concept `word:<english, casefolded>` with its own 80/10/10 split;
its captions are the dictionary's translations. English -> X dictionaries give the English headword
and its sense lines; X -> English ones give each English gloss of the X headword.

Kept honest in two ways:
- a word whose English side contains, or is contained in, a `parallel` dev/test language or territory
  name (whole words, `cldr_terms.leaks`) is DROPPED, as in cldr-terms and iso-names;
- a word whose English side equals an English caption of a dev or test concept of the image datasets
  built under `holdout` (emoji names and keywords, clip-art titles, Tux Paint and GCompris names, ...)
  is DROPPED: 'tomato' <-> 'nyanya' would otherwise teach the exact Swahili query of a held-out emoji.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr_terms import held_out_names, leaks
from mmembed.data.builders.concepts import Concept, lang_allowed, langs_select_none, parse_langs, select
from mmembed.data.builders.dictd import translation_pairs
from mmembed.data.builders.output import write_text_dataset
from mmembed.data.manifest import iter_manifest

NAME = "freedict"
DESCRIPTION = "English <-> translation pairs of common words: FreeDict dictionaries (sw, hi, ar)"
LICENSE = "GPL-2+ (FreeDict)"
# package pair -> (CLDR language of the other side, True when English is the headword side)
PAIRS = {"eng-swh": ("sw", True), "swh-eng": ("sw", False), "eng-hin": ("hi", True), "eng-ara": ("ar", True)}
IMAGE_DATASETS = ("emoji", "clipart", "tuxpaint", "gcompris", "photos", "debian-photos", "imagenet-prototypes")
MAX_WORDS = 4  # dictionary phrases longer than this are definitions, not translations
MAX_PER_WORD_LANG = 4  # senses kept per English word and language (the first ones: the commonest)


def _english_ok(text: str) -> bool:
    """A word or short phrase: letters, at most MAX_WORDS words, not an affix ('-arian', 'pre-')."""
    return (bool(re.search(r"[A-Za-z]", text)) and len(text.split()) <= MAX_WORDS
            and not text.startswith("-") and not text.endswith("-"))


def pairs(pair: str, index: Path) -> Iterator[tuple[str, str]]:
    """(English, translation) pairs of one dictionary; sense lines that list synonyms ('a, b') give one
    pair per synonym."""
    for english, other, _ in translation_pairs(index, english_headwords=PAIRS[pair][1]):
        if _english_ok(english) and not other.startswith("-") and len(other.split()) <= MAX_WORDS:
            yield english, other


def held_out_captions(holdout: Path) -> tuple[set[str], list[str]]:
    """Casefolded English captions of the dev and test concepts of the image datasets built under
    `holdout`, and the names of the datasets found there (missing ones are skipped; the card lists them)."""
    captions, read = set(), []
    for name in IMAGE_DATASETS:
        paths = [holdout / name / f"{split}.jsonl" for split in ("dev", "test")]
        if any(p.is_file() for p in paths):
            read.append(name)
        for path in paths:
            if path.is_file():
                captions |= {r.caption.casefold() for r in iter_manifest(path) if r.lang == "en"}
    return captions, read


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    holdout: Optional[str] = "data/build",
) -> Path:
    """Build freedict into `out`: `limit` English words by a stable hash, translations in `langs` only.
    `holdout`: the folder the image datasets were built into (their dev/test English captions are
    dropped); None skips that check (a dataset for other uses than training against those test sets)."""
    lang_set = parse_langs(langs)
    chosen = [s for s in sources.FREEDICT if lang_allowed(PAIRS[s.package.removeprefix("dict-freedict-")][0], lang_set)]
    if not chosen:
        raise langs_select_none(NAME, lang_set or (), {lang for lang, _ in PAIRS.values()}, "translations")
    dictionaries = [(s.package.removeprefix("dict-freedict-"), s.require(), s.info()) for s in chosen]
    held_names = held_out_names(sources.CLDR.require(), sources.PYCOUNTRY.require())
    read_holdout = []
    held_captions: set[str] = set()
    if holdout is not None:
        root = Path(holdout)
        if not root.is_dir():
            raise ValueError(f"holdout={holdout!r} is not a folder; build the image datasets there first "
                             "(mmembed data build emoji --out data/build/emoji, ...) or pass --set holdout=none")
        held_captions, read_holdout = held_out_captions(root)
    infos = [info for _, _, info in dictionaries] + [sources.CLDR.info(), sources.PYCOUNTRY.info()]

    concepts: dict[str, Concept] = {}
    dropped: Counter = Counter()
    per_word_lang: Counter = Counter()
    for pair, index, info in dictionaries:
        lang = PAIRS[pair][0]
        for english, other in pairs(pair, index):
            key = english.casefold()
            if key in held_captions:
                dropped["English caption of a held-out image concept"] += 1
                continue
            if leaks(english, held_names):
                dropped["name of a held-out language or territory"] += 1
                continue
            if per_word_lang[key, lang] >= MAX_PER_WORD_LANG:
                continue
            per_word_lang[key, lang] += 1
            concept = concepts.setdefault(key, Concept(f"word:{key}", text=english, text_lang="en"))
            concept.add(other, lang, "word", f"{info.package} {info.version}")
    kept = select(concepts.values(), lambda c: c.id, limit)
    records = [r for c in kept for r in c.records(LICENSE)]

    return write_text_dataset(
        out, records, name=NAME, description=DESCRIPTION, license=LICENSE, sources=infos, limit=limit, langs=lang_set,
        notes=[
            "Dictionaries: FreeDict eng-swh and swh-eng (Swahili), eng-hin (Hindi), eng-ara (Arabic), read "
            "from /usr/share/dictd (dictd format). Sense numbers, grammar marks, examples, notes and "
            "cross-references are removed; a sense listing synonyms gives one pair per synonym.",
            f"Phrases of more than {MAX_WORDS} words are left out (definitions, not translations); at most "
            f"{MAX_PER_WORD_LANG} translations per English word and language, the dictionary's first.",
            "English words that contain, or are contained in, a `parallel` dev/test language or territory "
            "name (whole words) are DROPPED.",
            f"English words equal to an English caption of a dev/test concept of the image datasets under "
            f"holdout={holdout!r} are DROPPED; datasets read: {', '.join(read_holdout) or 'none'}.",
            "Known noise: FreeDict's Hindi and Arabic entries come from machine-aided glossaries; some senses "
            "are loose (a verb glossed by a noun phrase), and eng-ara gives vocalized and unvocalized forms.",
        ],
        stats={"dropped": dict(sorted(dropped.items())), "holdout_datasets_read": read_holdout},
    )
