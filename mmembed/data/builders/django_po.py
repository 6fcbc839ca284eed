"""English/translated sentence pairs from the gettext catalogs that ship inside Django.

Kept: translated, non-fuzzy, non-obsolete, singular entries whose English text has >= 4 words.
Skipped (not stripped): entries with a format placeholder (`%(name)s`, `%s`, `%d`, `{name}`)
in the English or the translation, because removing a placeholder leaves a sentence with a hole
("Please correct the duplicate data for .") whose translation has its hole elsewhere.
HTML tags are removed from both sides (the text between them stays).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from mmembed.data.builders.langcodes import to_cldr

MIN_WORDS = 4
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0+]*\d*(?:\.\d+)?[sdifrxXc]|\{[^{}]*\}")
_TAG = re.compile(r"<[^<>]+>")


@dataclass(frozen=True)
class SentencePair:
    english: str
    translation: str
    lang: str  # CLDR-style code (zh_Hans -> zh)
    catalog: str  # e.g. "contrib/admin/locale/de/LC_MESSAGES/django.po"


def catalogs(django_dir: Path) -> list[Path]:
    """django.po and djangojs.po of Django itself and its contrib apps, sorted."""
    return sorted(django_dir.glob("**/locale/*/LC_MESSAGES/django*.po"))


def clean(text: str) -> str:
    return " ".join(_TAG.sub("", text).split())


def sentence_concept_id(english: str) -> str:
    """The concept of an English UI sentence: one id (and so one split) whichever catalog says it,
    Django's or a Debian package's (mmembed.data.builders.gettext_ui)."""
    return f"sentence:{hashlib.sha1(english.encode('utf-8')).hexdigest()[:16]}"


def read_pairs(django_dir: Path, langs: Optional[frozenset[str]], skipped: Counter) -> Iterator[SentencePair]:
    """Yield usable pairs in `langs` (None: all); count skipped entries by reason in `skipped`."""
    import polib

    for path in catalogs(django_dir):
        locale = to_cldr(path.parent.parent.name)
        if locale == "en" or (langs is not None and locale not in langs):
            continue  # (en is the source language: its msgstr are empty)
        rel = path.relative_to(django_dir).as_posix()
        try:
            po = polib.pofile(str(path))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: unreadable .po catalog ({err})") from None
        for entry in po:
            reason = skip_reason(entry)
            if reason:
                skipped[reason] += 1
                continue
            yield SentencePair(clean(entry.msgid), clean(entry.msgstr), locale, rel)


def skip_reason(entry, clean=clean) -> str:
    """Why a catalog entry (polib .po or .mo) gives no pair, or "" when it does; `clean` is the
    text cleaning the caller applies (the word count is taken after it)."""
    if getattr(entry, "obsolete", False):
        return "obsolete"
    if entry.msgid_plural:
        return "plural"
    if getattr(entry, "fuzzy", False):
        return "fuzzy"
    if not entry.msgstr.strip():
        return "untranslated"
    if PLACEHOLDER.search(entry.msgid) or PLACEHOLDER.search(entry.msgstr):
        return "placeholder"
    if len(clean(entry.msgid).split()) < MIN_WORDS:
        return "short"
    if not clean(entry.msgstr):
        return "empty_after_cleaning"
    return ""
