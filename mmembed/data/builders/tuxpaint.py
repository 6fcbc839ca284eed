"""Tux Paint stamps: ~950 pictures (many of them photographs cut out on a transparent background,
the rest drawings) with one short description each, translated by people into ~100 languages.

The only image set here whose captions are human translations of a description of the picture
(emoji and clip art get their non-English captions through CLDR names), and the largest source
of photographic images: the photo-domain data that the emoji and clip-art sets lack.

Source layout (Debian `tuxpaint-stamps-default`): `stamps/<category>/.../<stem>.png` (or `.svg`)
beside `<stem>.txt`, whose first line is the English description and whose other lines are
`<locale>.utf8=<translation>`. Concept = one stamp, id `tuxpaint:<category path>/<stem>`, image
`images/<same>.png` (RGB on white, longest side <= max_side). Splits are by concept (hash of the
id), and stamps whose English description repeats another's are dropped (the first path in
sorted order stays): two pictures of "A flower." in different splits would make test a memory
check, and in one split they would make the retrieval answer ambiguous.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.clipart import check_max_side, write_flat_image
from mmembed.data.builders.concepts import Concept, lang_allowed, langs_option, parse_langs, select
from mmembed.data.builders.langcodes import in_own_script, to_cldr
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset

NAME = "tuxpaint"
DESCRIPTION = ("Tux Paint stamps: photographs and drawings with a short description translated "
               "by people into ~100 languages")
LICENSE = "GPL-2.0 (Tux Paint stamps, (c) 2002-2022 Bill Kendrick and contributors)"
# Letter stamps (A-Z, American Sign Language hand shapes): the description names a letter, which
# 4 visual tokens of a 224 px image do not resolve; and one translator's error (zh 'R' for 'I')
# is copied across the ASL set.
EXCLUDED_FOLDERS = ("symbols/alphabets",)
_LINE = re.compile(r"^([A-Za-z]{2,3}(?:_[A-Za-z]{2,4})?(?:@[A-Za-z]+)?)\.utf8=(.*)$")
_TRAILING = ".。|।!！"  # sentence ends; Hindi translators type '|' for the danda


@dataclass(frozen=True)
class Stamp:
    id: str  # category path and stem, e.g. 'animals/mammals/badger'
    image: Path
    english: str
    translations: tuple[tuple[str, str], ...]  # (CLDR-style locale, text), file order


def clean(text: str) -> str:
    """'A badger.' -> 'A badger'; collapses whitespace; one trailing sentence end goes."""
    text = " ".join(text.split())
    return text[:-1].rstrip() if text and text[-1] in _TRAILING else text


def read_description(path: Path) -> tuple[str, list[tuple[str, str]], list[int]]:
    """(English, [(locale, text)], line numbers that are neither) of one stamp's .txt file."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    english = clean(lines[0]) if lines else ""
    pairs, odd = [], []
    for number, line in enumerate(lines[1:], start=2):
        m = _LINE.match(line.strip())
        if m:
            pairs.append((to_cldr(m.group(1)), clean(m.group(2))))
        elif line.strip():
            odd.append(number)
    return english, pairs, odd


def find_stamps(root: Path) -> tuple[list[Stamp], Counter]:
    """Every described stamp with a PNG, in path order; `skipped` counts what was left out and why
    (and, as `unparsed_lines`, lines that are neither English nor a translation)."""
    stamps: list[Stamp] = []
    skipped: Counter = Counter()
    for txt in sorted(root.rglob("*.txt")):
        rel = txt.relative_to(root).with_suffix("").as_posix()
        if any(rel.startswith(folder + "/") for folder in EXCLUDED_FOLDERS):
            skipped["excluded_folder"] += 1
            continue
        png = txt.with_suffix(".png")
        if not png.is_file():
            # no SVG renderer among our dependencies; these are drawings, not photographs
            skipped["svg_only" if txt.with_suffix(".svg").is_file() else "no_image"] += 1
            continue
        english, pairs, odd = read_description(txt)
        if not english:
            skipped["no_english_description"] += 1
            continue
        skipped["unparsed_lines"] += len(odd)
        stamps.append(Stamp(rel, png, english, tuple(pairs)))
    return stamps, skipped


def unique_descriptions(stamps: list[Stamp]) -> tuple[list[Stamp], list[str]]:
    """Keep the first stamp (path order) of each English description; return the dropped ids."""
    seen: set[str] = set()
    kept: list[Stamp] = []
    dropped: list[str] = []
    for stamp in stamps:
        key = stamp.english.casefold()
        if key in seen:
            dropped.append(stamp.id)
        else:
            seen.add(key)
            kept.append(stamp)
    return kept, dropped


def _concept(stamp: Stamp, rel: str, source: str, lang_set: Optional[frozenset[str]],
             untranslated: Counter, wrong_script: Counter) -> Concept:
    concept = Concept(f"{NAME}:{stamp.id}", image=rel)
    concept.add(stamp.english, "en", "description", source)
    for locale, text in stamp.translations:
        # an English variant may equal the English line; in any other locale that is an
        # untranslated copy, not a caption in that language
        if not locale.startswith("en") and text.casefold() == stamp.english.casefold():
            untranslated[locale] += 1
            continue
        if not in_own_script(text, locale):
            wrong_script[locale] += 1  # e.g. every Tamil line: TSCII bytes read as Latin-1
            continue
        concept.add(text, locale, "description", source)
    concept.captions = [c for c in concept.captions if lang_allowed(c.lang, lang_set)]
    return concept


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    max_side: int = 224,
) -> Path:
    """Build the Tux Paint stamps dataset into `out`: `limit` stamps chosen by a stable hash (all
    by default), captions in `langs` only (default: English plus every translation)."""
    root = sources.TUXPAINT_STAMPS.require()
    check_max_side(max_side)
    lang_set = parse_langs(langs)
    info = sources.TUXPAINT_STAMPS.info()
    source = f"{info.package} {info.version}"
    found, skipped = find_stamps(root)
    unique, duplicates = unique_descriptions(found)
    stamps = select(unique, lambda s: s.id, limit)
    untranslated: Counter = Counter()
    wrong_script: Counter = Counter()
    with staging_dir(out) as tmp:
        records = []
        for stamp in stamps:
            rel = write_flat_image(stamp.image, tmp, stamp.id, max_side)
            records.extend(_concept(stamp, rel, source, lang_set, untranslated, wrong_script).records(LICENSE))
        if not records:
            raise ValueError(f"no caption of any Tux Paint stamp is in langs={sorted(lang_set or [])}")
        card = DatasetCard(
            dataset=NAME, description=DESCRIPTION, license=LICENSE, sources=[info],
            options={"limit": limit, "langs": langs_option(lang_set), "max_side": max_side},
            notes=[
                "Captions are short descriptions ('A badger', 'Hair', 'A sports car'), one per "
                "stamp and language, translated by Tux Paint's volunteers: quality varies by "
                "language, and a few lines are wrong (the zh ASL letters, excluded) or loose.",
                "Images are a mix of photographs cut out on a transparent background and "
                "drawings; nothing in the package says which. Flattened on white.",
                f"Left out: folders {', '.join(EXCLUDED_FOLDERS)} (letters), stamps with only an "
                "SVG (no renderer among the dependencies; they are drawings), and stamps whose "
                "English description repeats an earlier one (stats).",
                "A translation equal to the English line in a non-English locale is an "
                "untranslated copy and is dropped (stats.untranslated_copies).",
                "A translation without one letter of its language's script is dropped "
                "(stats.wrong_script): every Tamil line is in the TSCII font encoding read as "
                "Latin-1 ('´Õ ¾À¡ø¦ÀðÊ'), and a few lines elsewhere are English names or text "
                "typed on the wrong keyboard layout.",
            ],
            stats={"stamps_described": len(found) + sum(n for k, n in skipped.items() if k != "unparsed_lines"),
                   "stamps": len(stamps), "skipped": dict(sorted(skipped.items())),
                   "duplicate_descriptions_dropped": duplicates,
                   "untranslated_copies": dict(sorted(untranslated.items())),
                   "wrong_script": dict(sorted(wrong_script.items()))},
        )
        write_dataset(tmp, records, card, langs=lang_set)
    return Path(out)
