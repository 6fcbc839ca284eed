"""English word -> CLDR emoji concept, to give English-only captions names in every locale.

A word matches an emoji when it equals (case-insensitive, after naive singularisation) the
emoji's English short name, or else a one-word English keyword that belongs to that emoji only
(a keyword shared by several emoji, like "fruit", says nothing about which one is meant).
Only base annotations are used: derived ones are skin-tone/flag templates.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from mmembed.data.builders.cldr import annotation_locales, read_annotations


def singular(word: str) -> str:
    """Naive English singular of a casefolded phrase's last word: enough for matching tags
    like "stars" or "butterflies" to CLDR's singular names; irregular plurals are not handled."""
    word = " ".join(word.casefold().split())
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    return word[:-1]


@dataclass(frozen=True)
class Match:
    word: str  # the English word as it matched (singular, casefolded)
    cp: str  # emoji code points (CLDR form)
    via: str  # "name" | "keyword"


@dataclass
class CldrLexicon:
    by_name: dict[str, str]  # singular English name -> cp
    by_keyword: dict[str, str]  # singular one-word keyword unique to one emoji -> cp
    names: dict[str, dict[str, str]]  # cp -> {locale: short name}

    def match(self, word: str) -> Optional[Match]:
        key = singular(word)
        if key in self.by_name:
            return Match(key, self.by_name[key], "name")
        if key in self.by_keyword:
            return Match(key, self.by_keyword[key], "keyword")
        return None


def build_lexicon(common: Path, locales: Optional[list[str]] = None,
                  keep: Callable[[str], bool] = lambda cp: True) -> CldrLexicon:
    """Index English names/keywords of the annotated code points that `keep` accepts (the clip-art
    builder keeps those the emoji font draws: CLDR also names '•' "bullet" and '(' "paren"), and
    collect their names in `locales` (default: all)."""
    english = {cp: ann for cp, ann in read_annotations(common, "en", derived=False).items() if keep(cp)}
    by_name: dict[str, str] = {}
    for cp, ann in sorted(english.items()):
        if ann.name:
            by_name.setdefault(singular(ann.name), cp)
    owners: dict[str, set[str]] = defaultdict(set)
    for cp, ann in english.items():
        for kw in ann.keywords:
            if len(kw.split()) == 1:
                owners[singular(kw)].add(cp)
    by_keyword = {
        kw: next(iter(cps)) for kw, cps in sorted(owners.items())
        if len(cps) == 1 and kw not in by_name
    }
    wanted = set(by_name.values()) | set(by_keyword.values())
    names: dict[str, dict[str, str]] = defaultdict(dict)
    for locale in locales if locales is not None else annotation_locales(common):
        for cp, ann in read_annotations(common, locale, derived=False).items():
            if cp in wanted and ann.name:
                names[cp][locale] = ann.name
    return CldrLexicon(by_name, by_keyword, dict(names))
