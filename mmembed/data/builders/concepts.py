"""Concepts and captions: what every builder produces before records are written.

A `Concept` is one thing (an emoji, a drawing, a source sentence) with one anchor and captions in
many languages. Splits are assigned per concept id, so every caption of a concept, in every
language, lands in the same split.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence, TypeVar

from mmembed.data.manifest import FeatureRef, PairRecord

# Percent of concepts per split; the hash bucket (0..99) picks the split.
SPLIT_PERCENT = (("train", 80), ("dev", 10), ("test", 10))

T = TypeVar("T")


def _bucket(key: str) -> int:
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % 100


def assign_split(concept_id: str) -> str:
    """train/dev/test from a stable hash of the concept id (80/10/10), the same on every machine."""
    bucket = _bucket(concept_id)
    upper = 0
    for split, percent in SPLIT_PERCENT:
        upper += percent
        if bucket < upper:
            return split
    raise AssertionError("split percentages must add up to 100")


def selection_key(concept_id: str, salt: str = "select") -> str:
    """Order for `--limit`: a hash with its own salt, so a limited build samples all categories
    and is not correlated with the split assignment (nor with another selection's salt)."""
    return hashlib.sha1(f"{salt}:{concept_id}".encode("utf-8")).hexdigest()


def select(items: Iterable[T], key_of: Callable[[T], str], limit: Optional[int],
           salt: str = "select") -> list[T]:
    """All items (sorted by id) or, with a limit, the first `limit` in selection-hash order."""
    items = sorted(items, key=key_of)
    if limit is None:
        return items
    check_limit(limit)
    chosen = sorted(items, key=lambda it: selection_key(key_of(it), salt))[:limit]
    return sorted(chosen, key=key_of)


def check_limit(limit: Optional[int]) -> None:
    """`limit` is None (all) or at least 1: a build of no concept would be an empty dataset."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (at most that many concepts), got {limit}")


class LangSelection(frozenset):
    """The codes of `langs`; `lang_allowed` also collects in `seen` every code it was asked about (the
    languages of the builder's sources), so a selection that matches nothing can name the real ones."""

    def __new__(cls, codes: Iterable[str]):
        self = super().__new__(cls, codes)
        self.seen = set()
        return self


def parse_langs(langs: Optional[str | Sequence[str]]) -> Optional[LangSelection]:
    """'en,de' or ['en', 'de'] -> {'en', 'de'}; None or empty means every language."""
    if langs is None:
        return None
    parts = langs.split(",") if isinstance(langs, str) else list(langs)
    codes = LangSelection(p.strip() for p in parts if p.strip())
    return codes or None


def lang_allowed(lang: str, langs: Optional[frozenset[str]]) -> bool:
    if langs is None:
        return True
    if isinstance(langs, LangSelection):
        langs.seen.add(lang)
    return lang in langs


def langs_option(langs: Optional[frozenset[str]]) -> Optional[list[str]]:
    """The `langs` a data card's options record: the chosen codes, sorted (None: every language)."""
    return sorted(langs) if langs else None


SHOWN_LANGS = 40  # codes a `langs_select_none` message lists (CLDR alone has over 700 locales)


def langs_select_none(dataset: str, langs: Iterable[str], available: Iterable[str] = (),
                      what: str = "captions") -> ValueError:
    """The error for `langs` that select nothing, e.g. "freedict has translations in ar, hi, sw only;
    langs=['de'] selects none of them", with a hint when a code differs from a real one only in case
    or the list is not comma-separated. Without `available` it says only which codes found nothing."""
    requested, available = sorted(langs), sorted(set(available))
    if available:
        shown = ", ".join(available[:SHOWN_LANGS])
        if len(available) > SHOWN_LANGS:
            shown = f"{len(available)} languages ({shown}, ...)"
        message = f"{dataset} has {what} in {shown} only; langs={requested} selects none of them"
    else:
        message = f"{dataset}: no records for langs={requested}"
    by_fold = {code.casefold(): code for code in available}
    near = {code: by_fold[code.casefold()] for code in requested if code.casefold() in by_fold}
    hints = [f"did you mean {', '.join(repr(v) for v in near.values())}?"] if near else []
    if any(ch in code for code in requested for ch in ";| "):
        hints.append("separate codes with commas: --langs en,de")
    hints.append("codes are case-sensitive CLDR locale names such as en, de, zh_Hant, pt_PT")
    return ValueError(f"{message} ({'; '.join(hints)})")


@dataclass(frozen=True)
class Caption:
    text: str
    lang: str
    kind: str  # name | keyword | title | category | cldr_name | sentence | ...
    source: str  # e.g. "unicode-cldr-core 41-0.1"


@dataclass
class Concept:
    """One anchor (image path relative to the dataset folder, a text, or a feature-table row) and
    its captions."""

    id: str
    image: Optional[str] = None
    text: Optional[str] = None
    features: Optional[FeatureRef] = None
    text_lang: Optional[str] = None
    captions: list[Caption] = field(default_factory=list)
    # None: the hash of `id`. A builder sets it when several concepts must share a split (photos
    # of one object) or when a concept must stay out of training (it is another set's test item).
    split: Optional[str] = None

    def add(self, text: str, lang: str, kind: str, source: str) -> None:
        text = " ".join(text.split())  # CLDR and .po strings carry stray newlines/tabs
        if text:
            self.captions.append(Caption(text, lang, kind, source))

    def records(self, license: str) -> list[PairRecord]:
        """One record per distinct (lang, caption); the first caption added wins, so builders add
        the most specific kind first (a name before the keyword that repeats it)."""
        split = self.split or assign_split(self.id)
        seen: set[tuple[str, str]] = set()
        out = []
        for cap in self.captions:
            key = (cap.lang, cap.text.casefold())
            if key in seen:
                continue
            # a caption identical to its text anchor teaches nothing (e.g. en_GB == en)
            if self.text is not None and cap.text.casefold() == self.text.casefold():
                continue
            seen.add(key)
            out.append(PairRecord(
                concept=self.id, caption=cap.text, lang=cap.lang, image=self.image,
                text=self.text, text_lang=self.text_lang, features=self.features, source=cap.source,
                license=license, kind=cap.kind, split=split,
            ))
        return out
