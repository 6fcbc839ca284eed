"""More parallel names from the iso-codes catalogs that pycountry ships: ISO 639-3 language names
and ISO 3166-2 subdivision names (provinces, states, regions), each English name anchoring its
translation in every catalog.

A training source beside `parallel`, whose test set is left as it is. `parallel` tests language
and territory names, so this set is close to its domain (Hindi alone has 9,276 translated
language names and 4,758 subdivision names); to keep that test honest an entry is dropped when
- it is a language whose CLDR code (ISO 639-1 where there is one, else 639-3) is a `parallel`
  dev/test concept, whatever its English name, or
- its English name and the English name of a `parallel` dev/test language or territory contain
  one another as whole words (`cldr_terms.leaks`: the state "Georgia" when Georgia is held out).
Entries are their own concepts (`iso639-3:<alpha_3>`, `iso3166-2:<code>`) with their own split.
"""
from __future__ import annotations

import gettext
import os
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr_terms import held_out_names, leaks
from mmembed.data.builders.concepts import Concept, assign_split, lang_allowed, parse_langs, select
from mmembed.data.builders.langcodes import to_cldr
from mmembed.data.builders.output import write_text_dataset

NAME = "iso-names"
DESCRIPTION = "English <-> translation pairs: ISO 639-3 language and ISO 3166-2 subdivision names (iso-codes)"
LICENSE = "LGPL-2.1 (iso-codes translations in pycountry)"
# catalog domain -> concept kind
DOMAINS = {"iso639-3": "language", "iso3166-2": "subdivision"}


def catalogs(pycountry_dir: Path, domain: str,
             langs: Optional[frozenset[str]]) -> list[tuple[str, gettext.GNUTranslations]]:
    """(CLDR locale, catalog) for every locale shipping `domain`.mo, sorted by locale folder."""
    out = []
    for path in sorted((pycountry_dir / "locales").glob(f"*/LC_MESSAGES/{domain}.mo")):
        lang = to_cldr(path.parent.parent.name)
        if lang_allowed(lang, langs):
            with path.open("rb") as fh:
                out.append((lang, gettext.GNUTranslations(fh)))
    return out


def held_out_language_codes() -> set[str]:
    """CLDR codes of languages in `parallel` dev/test: a 639-3 entry with one of them is dropped."""
    import pycountry

    codes = set()
    for lang in pycountry.languages:
        for code in (getattr(lang, "alpha_2", None), lang.alpha_3):
            if code and assign_split(f"language:{code}") != "train":
                codes.add(code)
    return codes


def english_entries() -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
    """(domain, concept id, English name, codes) for every 639-3 language and 3166-2 subdivision."""
    import pycountry

    for lang in sorted(pycountry.languages, key=lambda x: x.alpha_3):
        codes = tuple(c for c in (getattr(lang, "alpha_2", None), lang.alpha_3) if c)
        yield "iso639-3", f"iso639-3:{lang.alpha_3}", lang.name, codes
    for sub in sorted(pycountry.subdivisions, key=lambda x: x.code):
        yield "iso3166-2", f"iso3166-2:{sub.code}", sub.name, ()


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build iso-names into `out`: `limit` names chosen by a stable hash, translations in `langs`
    only (the English anchors are always there)."""
    pycountry_dir = sources.PYCOUNTRY.require()
    common = sources.CLDR.require()  # for the held-out CLDR names of `parallel`
    lang_set = parse_langs(langs)
    infos = [sources.PYCOUNTRY.info(), sources.CLDR.info()]
    source = f"{infos[0].package} {infos[0].version}"

    held_names = held_out_names(common, pycountry_dir)
    held_codes = held_out_language_codes()
    by_domain = {domain: catalogs(pycountry_dir, domain, lang_set) for domain in DOMAINS}
    dropped: Counter = Counter()
    concepts = []
    for domain, cid, english, codes in english_entries():
        if any(c in held_codes for c in codes):
            dropped["held-out language code"] += 1
            continue
        if leaks(english, held_names):
            dropped["name of a held-out language or territory"] += 1
            continue
        concept = Concept(cid, text=english, text_lang="en")
        for lang, catalog in by_domain[domain]:
            translated = catalog.gettext(english)
            if translated != english:  # gettext returns its input when untranslated
                concept.add(translated, lang, DOMAINS[domain], source)
        if concept.captions:
            concepts.append(concept)
    kept = select(concepts, lambda c: c.id, limit)
    records = [r for c in kept for r in c.records(LICENSE)]

    return write_text_dataset(
        out, records, name=NAME, description=DESCRIPTION, license=LICENSE, sources=infos, limit=limit, langs=lang_set,
        notes=[
            "Names are pycountry's English `name` of each ISO 639-3 language and ISO 3166-2 "
            "subdivision, looked up in the iso-codes catalogs (iso639-3.mo, iso3166-2.mo); an "
            "untranslated entry gives no record.",
            "Entries that would teach a `parallel` dev/test name are DROPPED: languages whose "
            "CLDR code is held out there, and names containing, or contained in, a held-out "
            "English language or territory name (whole words).",
            "Catalog coverage is very uneven: hi, zh, ja, ru, de, fr are large; es has about "
            "250 names, ar fewer than 100 (no subdivisions), sw none.",
            "CLDR is read only for the held-out names of `parallel` (that leak check).",
        ],
        stats={"dropped": dict(sorted(dropped.items())),
               "concepts_by_kind": dict(sorted(Counter(c.id.split(":")[0] for c in kept).items()))},
    )
