"""Reader of dictd dictionaries (`NAME.index` + `NAME.dict.dz`), the format FreeDict ships in Debian.

The index has one line per headword: `headword TAB offset TAB length`, offset and length in dictd's
base-64 digits. The .dict.dz is dictzip, which is gzip: the whole text is read at once (the largest
dictionary read here is 10 MB). An entry's text is its header line (`word /pron/ <pos>`), then sense
lines (`1. translation`), example lines in quotes and cross-reference lines (`see: {...}`).
"""
from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DIGIT = {c: i for i, c in enumerate(B64)}


class DictdError(ValueError):
    pass


def b64_number(text: str) -> int:
    n = 0
    for ch in text:
        if ch not in _DIGIT:
            raise DictdError(f"{text!r} is not a dictd base-64 number")
        n = n * 64 + _DIGIT[ch]
    return n


@dataclass(frozen=True)
class Entry:
    headword: str  # as the header line writes it ("Maharaja"; the index lowercases)
    senses: tuple[str, ...]  # the translations, one per sense line, cleaned (see `senses`)


_SENSE_NUMBER = re.compile(r"^\d+\.\s*")
_BRACKETS = re.compile(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)|\{[^}]*\}")
_SKIP_PREFIXES = ('"', "see:", "Synonym:", "Note:", "Antonym:")


def header_word(line: str) -> str:
    """'broom /bɹˈuːm/ <n>' -> 'broom'; 'bure /bˈure/ <adv>' -> 'bure'."""
    return _BRACKETS.sub(" ", line.split(" /", 1)[0]).strip()


def senses(lines: list[str]) -> tuple[str, ...]:
    """The sense lines of an entry body, cleaned: sense numbers, grammar marks (<n>, [sg=pl], (pl: ...))
    and FreeDict's '~' for a space removed; examples, notes and cross-references skipped."""
    out = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(_SKIP_PREFIXES):
            continue
        line = _BRACKETS.sub(" ", _SENSE_NUMBER.sub("", line)).replace("~", " ")
        line = " ".join(line.split()).strip(" ,;")
        if line:
            out.append(line)
    return tuple(out)


def read_dictd(index: Path) -> Iterator[Entry]:
    """Every entry of the dictionary whose index is `index` (its .dict.dz beside it), in index order;
    dictd's own metadata entries (00-database-...) are skipped."""
    data_path = index.with_name(index.name.removesuffix(".index") + ".dict.dz")
    try:
        data = gzip.open(data_path).read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a damaged deflate stream
        raise DictdError(f"{data_path}: unreadable dictd data ({err})") from None
    try:
        lines = index.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:  # a damaged or non-UTF-8 index names its file, not a bare codec error
        raise DictdError(f"{index}: unreadable dictd index ({err})") from None
    seen: set[tuple[int, int]] = set()
    for number, line in enumerate(lines, 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise DictdError(f"{index}:{number}: expected 'headword<TAB>offset<TAB>length', got {line[:80]!r}")
        try:
            head, offset, length = parts[0], b64_number(parts[1]), b64_number(parts[2])
        except DictdError as err:
            raise DictdError(f"{index}:{number}: {err}") from None
        if head.startswith("00") and "database" in head:
            continue
        if (offset, length) in seen:  # several index words can point at one entry
            continue
        seen.add((offset, length))
        text = data[offset:offset + length].decode("utf-8", errors="replace").splitlines()
        if not text:
            continue
        yield Entry(header_word(text[0]), senses(text[1:]))


_SPLIT_SENSE = re.compile(r"[,;]")
_GLOSS_PREFIX = re.compile(r"^(plural of|pl\. of|see|synonyms?)\s*:?\s*", re.IGNORECASE)  # swh-eng: "Plural of : sickness"


def translation_pairs(index: Path, english_headwords: bool) -> Iterator[tuple[str, str, int]]:
    """(English, other language, rank) triples of a bilingual dictionary, one per listed synonym ('a, b' gives
    two); rank is the synonym's position among its entry's translations (0: listed first, the main sense).
    `english_headwords`: English is the headword side (eng-xxx), else the senses are English (xxx-eng)."""
    for entry in read_dictd(index):
        parts = [_GLOSS_PREFIX.sub("", p.strip()).strip() for sense in entry.senses for p in _SPLIT_SENSE.split(sense)]
        for rank, part in enumerate(p for p in parts if p):
            yield (entry.headword, part, rank) if english_headwords else (part, entry.headword, rank)
