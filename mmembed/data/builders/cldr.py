"""Reading Unicode CLDR XML: emoji annotations (names, keywords) and display names.

Rules shared by every CLDR reader (and stated in the data cards):
- entries marked draft="unconfirmed" or "provisional" are skipped (CLDR itself does not ship
  them as release quality), as are `alt=` variants of display names;
- the inheritance marker "↑↑↑" (value comes from the parent locale) and empty values are
  skipped: the parent locale has its own file and its own records;
- `root.xml` holds no language and is never read.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

INHERIT = "↑↑↑"
_LOW_QUALITY_DRAFT = {"unconfirmed", "provisional"}


@dataclass(frozen=True)
class Annotation:
    """One emoji in one locale. `cp` is CLDR's code-point string (U+FE0F removed)."""

    cp: str
    name: Optional[str]  # the short name (type="tts")
    keywords: tuple[str, ...]


def _usable(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    value = " ".join(value.split())
    return value if value and value != INHERIT else None


def _parse(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not valid CLDR XML ({err})") from None


def annotation_locales(common: Path) -> list[str]:
    """Locales with an annotation file (base or derived), from the file names, without root."""
    names = {p.stem for d in ("annotations", "annotationsDerived") for p in (common / d).glob("*.xml")}
    names.discard("root")
    return sorted(names)


def read_annotations(common: Path, locale: str, derived: bool = True) -> dict[str, Annotation]:
    """Merge annotations/LOCALE.xml and (if `derived`) annotationsDerived/LOCALE.xml by cp."""
    names: dict[str, str] = {}
    keywords: dict[str, tuple[str, ...]] = {}
    folders = ("annotations", "annotationsDerived") if derived else ("annotations",)
    for folder in folders:
        path = common / folder / f"{locale}.xml"
        if not path.is_file():
            continue
        for el in _parse(path).iter("annotation"):
            cp = el.get("cp")
            if not cp or el.get("draft") in _LOW_QUALITY_DRAFT:
                continue
            if el.get("type") == "tts":
                name = _usable(el.text)
                if name:
                    names[cp] = name
            else:
                words = tuple(w for w in (_usable(k) for k in (el.text or "").split("|")) if w)
                if words:
                    keywords[cp] = words
    return {
        cp: Annotation(cp, names.get(cp), keywords.get(cp, ()))
        for cp in sorted(set(names) | set(keywords))
    }


@dataclass(frozen=True)
class DisplayName:
    kind: str  # "language" | "territory"
    code: str  # CLDR type attribute: "de", "zh_Hant", "DE", "001"
    name: str


def main_locales(common: Path) -> list[str]:
    return sorted(p.stem for p in (common / "main").glob("*.xml") if p.stem != "root")


def read_display_names(common: Path, locale: str) -> Iterator[DisplayName]:
    """Language and territory names from main/LOCALE.xml (no alt forms, no draft entries)."""
    root = _parse(common / "main" / f"{locale}.xml")
    names = root.find("localeDisplayNames")
    if names is None:
        return
    for kind, container in (("language", "languages"), ("territory", "territories")):
        for code, name in _typed_names(names.findall(f"{container}/{kind}"), skip_alt=True):
            yield DisplayName(kind, code, name)


def read_character_labels(common: Path, locale: str) -> dict[str, str]:
    """characterLabel type -> its name in main/LOCALE.xml ('animals_nature' -> 'Flora und Fauna').

    A regional file (es_419, pt_PT) holds only the labels that differ from its parent: no others
    are filled in, as for every other CLDR reader here.
    """
    path = common / "main" / f"{locale}.xml"
    if not path.is_file():
        return {}
    return dict(_typed_names(_parse(path).iter("characterLabel")))


def _typed_names(elements, skip_alt: bool = False) -> Iterator[tuple[str, str]]:
    """(type attribute, usable text) of CLDR name elements, skipping draft (and, if asked, alt) ones."""
    for el in elements:
        if (skip_alt and el.get("alt")) or el.get("draft") in _LOW_QUALITY_DRAFT:
            continue
        name = _usable(el.text)
        code = el.get("type")
        if name and code:
            yield code, name


@dataclass(frozen=True)
class Term:
    """A named thing in main/LOCALE.xml beyond language and territory names.

    `key` identifies it across locales: "currency:JPY", "script:Deva", "city:Asia/Tokyo",
    "timezone:Europe_Central:standard", "unit:length-kilometer", "type:calendar:islamic",
    "month:3", "weekday:sun", "field:year".
    """

    key: str
    name: str


# (key prefix, XPath of the named elements; their `type` identifies one). Only the unabbreviated
# forms: long unit names, wide month and day names, fields without -short/-narrow.
_TERM_PATHS = (
    ("currency", "numbers/currencies/currency"),
    ("script", "localeDisplayNames/scripts/script"),
    ("unit", "units/unitLength[@type='long']/unit"),
    ("month", "dates/calendars/calendar[@type='gregorian']/months/monthContext[@type='format']"
              "/monthWidth[@type='wide']/month"),
    ("weekday", "dates/calendars/calendar[@type='gregorian']/days/dayContext[@type='format']"
                "/dayWidth[@type='wide']/day"),
    ("field", "dates/fields/field"),
)


def city_from_zone_id(zone: str) -> str:
    """English exemplar city from a tz id, CLDR's own fallback: 'America/Los_Angeles' -> 'Los Angeles'."""
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def read_terms(common: Path, locale: str) -> Iterator[Term]:
    """Currency, script, unit, month, weekday, date-field, calendar/collation/number-system names,
    exemplar cities of time zones and long time-zone names of main/LOCALE.xml: no alt forms, no
    draft entries, no plural-count variants (a currency's 'one'/'other' forms)."""
    root = _parse(common / "main" / f"{locale}.xml")
    named: list[tuple[str, Optional[ET.Element]]] = []  # (key, the element whose text names it)
    for prefix, path in _TERM_PATHS:
        for el in root.findall(path):
            code = el.get("type")
            if not code or (prefix == "field" and "-" in code) or not _acceptable(el):
                continue  # 'year-short', 'year-narrow'; alt or draft entries
            if prefix in ("currency", "unit", "field"):  # the name is a child; skip 'one'/'other' forms
                named += [(f"{prefix}:{code}", d) for d in el.findall("displayName") if d.get("count") is None]
            else:
                named.append((f"{prefix}:{code}", el))
    named += [(f"type:{el.get('key')}:{el.get('type')}", el) for el in root.findall("localeDisplayNames/types/type")]
    named += [(f"city:{zone.get('type')}", zone.find("exemplarCity"))
              for zone in root.findall("dates/timeZoneNames/zone") if zone.get("type") != "Etc/Unknown"]
    named += [(f"timezone:{metazone.get('type')}:{el.tag}", el)
              for metazone in root.findall("dates/timeZoneNames/metazone") for el in metazone.findall("long/*")]
    for key, el in named:
        name = _name_of(el)
        if name:
            yield Term(key, name)


def _acceptable(el: Optional[ET.Element]) -> bool:
    return el is not None and not el.get("alt") and el.get("draft") not in _LOW_QUALITY_DRAFT


def _name_of(el: Optional[ET.Element]) -> Optional[str]:
    """The usable text of a name element; None for a missing, alt or draft one."""
    return _usable(el.text) if _acceptable(el) else None
