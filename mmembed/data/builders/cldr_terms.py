"""More parallel names from CLDR main/*.xml: currencies, scripts, units, cities, time zones,
calendars, months, weekdays and date fields, each English name anchoring every locale's name.

A training source beside `parallel`, whose test set is left as it is. To keep that test honest,
a term is dropped when its English name and the English name of a `parallel` dev or test
language or territory contain one another as whole words ("Japanese Yen" when `language:ja` is
held out, the city "Singapore" when `territory:SG` is): otherwise training on the term would
teach the held-out name. Terms are their own concepts with their own 80/10/10 split.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import (Term, city_from_zone_id, main_locales, read_display_names,
                                        read_terms)
from mmembed.data.builders.concepts import Concept, assign_split, lang_allowed, parse_langs, select
from mmembed.data.builders.output import write_text_dataset
from mmembed.data.builders.parallel import pycountry_concepts

NAME = "cldr-terms"
DESCRIPTION = "English <-> translation pairs: CLDR currency, script, unit, city, time-zone and calendar names"
LICENSE = "Unicode-DFS-2016"


def english_names(common: Path, zone_ids: Iterable[str]) -> dict[str, str]:
    """key -> English name: en.xml, then root.xml's exemplar cities, then the tz id itself
    (English has no file entry for most cities: 'Asia/Tokyo' is 'Tokyo')."""
    names = {f"city:{zone}": city_from_zone_id(zone) for zone in zone_ids}
    names.update({t.key: t.name for t in read_terms(common, "root") if t.key.startswith("city:")})
    names.update({t.key: t.name for t in read_terms(common, "en")})
    return names


def _words(text: str) -> str:
    """Casefolded words joined by single spaces, with a space at both ends for whole-word `in`."""
    return " " + " ".join(re.findall(r"\w+", text.casefold())) + " "


def held_out_names(common: Path, pycountry_dir: Path) -> set[str]:
    """English names of the `parallel` dataset's dev and test languages and territories."""
    names = {n.name for n in read_display_names(common, "en")
             if assign_split(f"{n.kind}:{n.code}") != "train"}
    names |= {c.text for c in pycountry_concepts(pycountry_dir, "", frozenset())
              if assign_split(c.id) != "train"}
    return {_words(n) for n in names if n}


def leaks(english: str, held_out: set[str]) -> bool:
    words = _words(english)
    return any(name in words or words in name for name in held_out)


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
) -> Path:
    """Build cldr-terms into `out`: `limit` terms chosen by a stable hash, names in `langs` only
    (the English anchors are always there)."""
    common = sources.CLDR.require()
    pycountry_dir = sources.PYCOUNTRY.require()
    lang_set = parse_langs(langs)
    infos = [sources.CLDR.info(), sources.PYCOUNTRY.info()]
    source = f"{infos[0].package} {infos[0].version}"

    by_locale: dict[str, list[Term]] = {
        loc: list(read_terms(common, loc)) for loc in main_locales(common) if lang_allowed(loc, lang_set)
    }
    zones = {t.key.split(":", 1)[1] for terms in by_locale.values() for t in terms if t.key.startswith("city:")}
    english = english_names(common, zones)
    held_out = held_out_names(common, pycountry_dir)
    dropped = {key for key, name in english.items() if leaks(name, held_out)}
    concepts = {key: Concept(f"term:{key}", text=name, text_lang="en")
                for key, name in english.items() if key not in dropped}
    for locale, terms in by_locale.items():
        for term in terms:
            concept = concepts.get(term.key)
            if concept is not None:
                concept.add(term.name, locale, term.key.split(":", 1)[0], source)
    kept = select(concepts.values(), lambda c: c.id, limit)
    records = [r for c in kept for r in c.records(LICENSE) if r.lang != "en"]

    return write_text_dataset(
        out, records, name=NAME, description=DESCRIPTION, license=LICENSE, sources=infos, limit=limit, langs=lang_set,
        notes=[
            "Currency names without plural-count forms, script names, long unit names, wide "
            "Gregorian month and weekday names, date-field names without -short/-narrow, "
            "calendar/collation/number-system type names, exemplar cities of time zones and "
            "long (generic/standard/daylight) time-zone names; alt= and draft entries skipped.",
            "English city names: en.xml, else root.xml, else the tz id ('America/Los_Angeles' "
            "-> 'Los Angeles'), CLDR's own fallback.",
            "Terms whose English name contains, or is contained in, the English name of a "
            "`parallel` dev/test language or territory (whole words) are DROPPED, so training on "
            "this set does not teach those held-out names. Adjectives still overlap: 'Swiss "
            "Franc' stays when Switzerland is held out.",
            "pycountry is read only for its English country names (that leak check).",
        ],
        stats={"terms_dropped_as_parallel_leaks": len(dropped),
               "concepts_by_kind": dict(sorted(Counter(
                   c.id.split(":")[1] for c in kept).items()))},
    )
