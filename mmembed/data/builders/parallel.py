"""Parallel text for cross-lingual retrieval: English anchor `text`, translated `caption`.

Three sources, one record format (text_lang="en"):
- Django's .po catalogs: UI sentences (kind="sentence"), concept = the English sentence;
- CLDR main/*.xml: names of languages and territories (kind="name"), concept = the code;
- pycountry's iso3166-1 catalogs: country names (kind="name"), concept = the alpha-2 code, the
  SAME concept as the CLDR territory, so "Germany" lands in one split whichever source says it.
"""
from __future__ import annotations

import gettext
import os
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import main_locales, read_display_names
from mmembed.data.builders.concepts import Concept, lang_allowed, parse_langs, select
from mmembed.data.builders.django_po import MIN_WORDS, read_pairs, sentence_concept_id
from mmembed.data.builders.langcodes import to_cldr
from mmembed.data.builders.output import write_text_dataset

NAME = "parallel"
DESCRIPTION = "English <-> translation pairs: Django UI sentences, CLDR and pycountry names"
LICENSE = "BSD-3-Clause (Django); Unicode-DFS-2016 (CLDR); LGPL-2.1 (pycountry)"


def _source(info) -> str:
    return f"{info.package} {info.version}"


def django_concepts(django_dir: Path, source: str, langs: Optional[frozenset[str]],
                    skipped: Counter) -> Iterator[Concept]:
    """One concept per distinct English sentence, with every catalog's translation of it."""
    by_english: dict[str, Concept] = {}
    for pair in read_pairs(django_dir, langs, skipped):
        concept = by_english.get(pair.english)
        if concept is None:
            concept = by_english[pair.english] = Concept(sentence_concept_id(pair.english), text=pair.english,
                                                         text_lang="en")
        concept.add(pair.translation, pair.lang, "sentence", source)
    yield from by_english.values()


def cldr_concepts(common: Path, source: str, langs: Optional[frozenset[str]]) -> Iterator[Concept]:
    """Language and territory names: the English name anchors every locale's name."""
    english = {(n.kind, n.code): n.name for n in read_display_names(common, "en")}
    concepts = {
        key: Concept(f"{key[0]}:{key[1]}", text=name, text_lang="en") for key, name in english.items()
    }
    for locale in (loc for loc in main_locales(common) if lang_allowed(loc, langs)):
        for n in read_display_names(common, locale):
            concept = concepts.get((n.kind, n.code))
            if concept is not None:  # a code English has no name for cannot be anchored
                concept.add(n.name, locale, "name", source)
    yield from concepts.values()


def pycountry_concepts(pycountry_dir: Path, source: str, langs: Optional[frozenset[str]]) -> Iterator[Concept]:
    """Country names (`name`, and `common_name` where pycountry has one) in every catalog."""
    import pycountry

    mo_files = sorted((pycountry_dir / "locales").glob("*/LC_MESSAGES/iso3166-1.mo"))
    catalogs = []
    for path in mo_files:
        if not lang_allowed(to_cldr(path.parent.parent.name), langs):
            continue
        with path.open("rb") as fh:
            catalogs.append((to_cldr(path.parent.parent.name), gettext.GNUTranslations(fh)))
    for country in sorted(pycountry.countries, key=lambda c: c.alpha_2):
        for english in sorted({country.name, getattr(country, "common_name", country.name)}):
            concept = Concept(f"territory:{country.alpha_2}", text=english, text_lang="en")
            for lang, catalog in catalogs:
                translated = catalog.gettext(english)
                if translated != english:  # gettext returns its input when untranslated
                    concept.add(translated, lang, "name", source)
            yield concept


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build the parallel dataset into `out`: `limit` concepts (sentences and names) chosen by a
    stable hash, translations in `langs` only (the English anchors are always there)."""
    django_dir = sources.DJANGO.require()
    pycountry_dir = sources.PYCOUNTRY.require()
    common = sources.CLDR.require()
    lang_set = parse_langs(langs)
    infos = [sources.DJANGO.info(), sources.CLDR.info(), sources.PYCOUNTRY.info()]

    skipped: Counter = Counter()
    concepts = [
        *django_concepts(django_dir, _source(infos[0]), lang_set, skipped),
        *cldr_concepts(common, _source(infos[1]), lang_set),
        *pycountry_concepts(pycountry_dir, _source(infos[2]), lang_set),
    ]
    # one concept id can come from two sources (CLDR and pycountry): select ids, not objects
    kept_ids = set(select({c.id for c in concepts}, lambda cid: cid, limit))
    records = [r for c in concepts if c.id in kept_ids for r in c.records(LICENSE)]

    return write_text_dataset(
        out, records, name=NAME, description=DESCRIPTION, license=LICENSE, sources=infos, limit=limit, langs=lang_set,
        notes=[
            f"Django: entries of >= {MIN_WORDS} English words; fuzzy, obsolete, untranslated "
            "and plural entries are skipped, and so are entries with format placeholders "
            "(%(name)s, %s, {name}): SKIPPED, not stripped. HTML tags are removed.",
            "Django catalogs are UI strings: many sentences share a template ('Enter a "
            "valid ...'), and a few translations are partial or terse.",
            "Locale codes follow CLDR: Django zh_Hans and pycountry zh_CN are 'zh', zh_Hant "
            "and zh_TW are 'zh_Hant', sr@latin is 'sr_Latn'.",
            "CLDR names skip alt= variants and draft=unconfirmed/provisional entries; CLDR "
            "regional locales (en_GB, de_AT, ...) hold only names that differ from the parent.",
            "A caption equal to its English anchor (case-insensitive) is dropped; the same "
            "(anchor, language, caption) given by CLDR and pycountry counts once.",
            "Names overlap with the emoji dataset (flag captions such as 'flag: Germany').",
        ],
        stats={"django_skipped": dict(sorted(skipped.items())),
               "concepts_by_kind": dict(sorted(Counter(i.split(":")[0] for i in kept_ids).items()))},
    )
