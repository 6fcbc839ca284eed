"""Query glossing: a query in a language the backbone reads poorly borrows the meaning of its English gloss.

Why: Gemma 3 270M does not know everyday Swahili words (`mbwa` dog, `ndizi` banana; 29b's card), and no training
on other concepts teaches them (stages 34a / 35a). A bilingual dictionary does know them. Each query word (or
phrase of up to MAX_PHRASE words, longest first) found in the dictionary gives its English gloss, and the query
vector becomes normalize(q + w * g), g the embedding of the gloss. The query keeps its own reading; the gloss adds
the one the backbone lacks. A query with no word in the dictionary keeps its vector.

    glossary = Glossary.load("sw")                       # FreeDict's Swahili <-> English (Debian dict-freedict-*)
    glossary.gloss("mbwa kubwa")                         # 'dog big'
    vectors = glossed_embeddings(encode, ["mbwa kubwa"], glossary)   # the language's tuned weight

The dictionaries are Debian's FreeDict packages (GPL-2+, eng-deu GPL-3+), read where dictd keeps them; they are not shipped with
mmembed. `MMEMBED_DICTD_DIR` (or `dictd_dir=`) points elsewhere.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from mmembed.data.builders.dictd import DictdError, translation_pairs
from mmembed.paths import write_text_atomically

DEFAULT_DICTD_DIR = Path("/usr/share/dictd")
MAX_PHRASE = 4  # longest dictionary phrase looked up, in words
MAX_SENSES = 2  # English glosses kept for a one-word query ('ndege' -> 'bird, airplane'); longer queries keep one per span


@dataclass(frozen=True)
class DictionarySource:
    """One FreeDict dictionary: its file stem under the dictd folder and which side is English."""

    stem: str  # 'freedict-swh-eng' -> freedict-swh-eng.index + .dict.dz
    package: str  # the Debian package that installs it
    english_headwords: bool  # True: English headword -> translations (eng-xxx); False: xxx -> English glosses


def _freedict(pair: str) -> DictionarySource:
    return DictionarySource(f"freedict-{pair}", f"dict-freedict-{pair}", pair.startswith("eng-"))


# language -> its dictionaries, best first (a word's glosses come from the first that has it)
SOURCES: dict[str, tuple[DictionarySource, ...]] = {
    "sw": (_freedict("swh-eng"), _freedict("eng-swh")),
    "hi": (_freedict("eng-hin"),),
    "ar": (_freedict("eng-ara"),),
    "de": (_freedict("eng-deu"),),
    "fr": (_freedict("eng-fra"),),
    "es": (_freedict("eng-spa"),),
    "ru": (_freedict("eng-rus"),),
}


# three-letter codes (ISO 639-2/3, as FreeDict names its dictionaries) -> the codes above
ALIASES = {"swh": "sw", "swa": "sw", "hin": "hi", "ara": "ar", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr",
           "spa": "es", "rus": "ru"}
DEBIAN_PACKAGES = tuple(sorted({source.package for sources in SOURCES.values() for source in sources}))


class GlossaryError(ValueError):
    """No dictionary for a language, or its files are missing or unreadable."""


@functools.lru_cache(maxsize=1)
def _punctuation_table() -> dict[int, None]:
    """str.translate table deleting every punctuation and symbol code point (built once, ~0.5 s)."""
    return dict.fromkeys(i for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i))[0] in "PS")


def words(text: str) -> list[str]:
    """Casefolded words with punctuation removed: 'Mti, MKUBWA!' -> ['mti', 'mkubwa']. Combining marks stay
    (Devanagari vowel signs are part of the word). NFKC first: a decomposed 'Ku\u0308bel' (macOS, copy-paste) or a
    full-width 'ＭＢＷＡ' is the dictionary's 'kübel' / 'mbwa'."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_punctuation_table()).split()


def _english_stop_words() -> frozenset[str]:
    try:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    except ImportError:
        raise ImportError("query glossing needs scikit-learn: pip install 'mmembed[search]'") from None
    return frozenset(ENGLISH_STOP_WORDS)


def _senses(source: DictionarySource, index: Path):
    """(other-language key, English gloss, rank) of one dictionary, one per listed synonym."""
    for english, other, rank in translation_pairs(index, source.english_headwords):
        key = " ".join(words(other))
        if key and len(key.split()) <= MAX_PHRASE and not english.startswith("-"):
            yield key, english, rank


CACHE_VERSION = 3  # bump when the parsing or ordering of entries changes
_PLAIN_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*$")


def _english_frequency():
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise ImportError("query glossing needs wordfreq: pip install 'mmembed[search]'") from None
    return lambda text: zipf_frequency(text, "en")


def _read_dictionaries(indexes, stop: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """key -> English glosses, best first. A dictionary's entries list many glosses for one word (eng-deu gives
    'Hund' for dog, canine, dawg, K-9 and mine tub), in an order that says nothing (alphabetical by English
    headword), so they are ranked: earlier dictionary, then the word's rank in its entry (0: it is the entry's
    main translation), then one plain word before a phrase, then the commoner English word (wordfreq).
    A word whose main translation is an English stop word ('ein': a, one; 'ya': of) is a function word: left out."""
    frequency = _english_frequency()
    found: dict[str, dict[str, tuple]] = {}
    function_words: set[str] = set()
    for order, (source, index) in enumerate(indexes):
        try:
            for key, english, rank in _senses(source, index):
                if english.casefold() in stop:
                    if rank == 0:
                        function_words.add(key)
                    continue
                best = found.setdefault(key, {})
                sort_key = (order, rank, not _PLAIN_WORD.match(english))
                if english not in best or sort_key < best[english][:3]:
                    best[english] = (*sort_key, -frequency(english))
        except DictdError as err:
            raise GlossaryError(str(err)) from None
    return {key: tuple(sorted(glosses, key=glosses.get)) for key, glosses in found.items()
            if glosses and key not in function_words}


def _cache_file(lang: str, indexes: Sequence[Path]) -> Path:
    from mmembed.assets import mmembed_home

    stamp = []
    for index in indexes:
        for path in (index, index.with_name(index.name.removesuffix(".index") + ".dict.dz")):
            st = path.stat() if path.exists() else None
            stamp.append([str(path.resolve()), st and st.st_size, st and st.st_mtime_ns])
    key = hashlib.sha1(json.dumps([CACHE_VERSION, lang, stamp]).encode()).hexdigest()[:16]
    return mmembed_home() / "glossaries" / f"{lang}-{key}.json"


def _read_cache(path: Path) -> Optional[dict[str, tuple[str, ...]]]:
    try:
        return {k: tuple(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    except (OSError, ValueError, AttributeError, TypeError):  # absent or damaged: parse the dictionaries again
        return None


def _write_cache(path: Path, entries: dict[str, tuple[str, ...]]) -> None:
    """Best effort (a read-only home only costs the parse next time); atomic, so a reader never sees half a file,
    and each writer has its own temporary name."""
    try:
        write_text_atomically(path, json.dumps(entries, ensure_ascii=False))
    except OSError:
        pass


@dataclass(frozen=True)
class Glossary:
    """Words and phrases of one language -> their English glosses, commonest sense first."""

    lang: str
    entries: dict[str, tuple[str, ...]]
    stop_words: frozenset[str]  # English glosses that carry no meaning on their own ('of', 'a')

    @staticmethod
    def language(lang: str) -> str:
        """'sw', 'SW', 'sw-TZ', 'sw_KE' and 'swh' all mean Swahili; anything else is named in the error."""
        if not isinstance(lang, str):
            raise GlossaryError(f"a query language is a code such as 'sw', got {type(lang).__name__} {lang!r}")
        code = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
        code = ALIASES.get(code, code)
        if code not in SOURCES:
            raise GlossaryError(f"no dictionary for language {lang!r}; glossing knows {', '.join(sorted(SOURCES))}")
        return code

    @classmethod
    def load(cls, lang: str, dictd_dir: Optional[str | os.PathLike] = None) -> "Glossary":
        """The glossary of `lang` from its FreeDict dictionaries. The first read of a dictionary is cached as
        JSON under MMEMBED_HOME (keyed by the files' size and mtime): German's 460,000 entries take 15-17 s to
        parse and well under a second to load again."""
        lang = cls.language(lang)
        folder = dictd_folder(dictd_dir)
        indexes = []
        for source in SOURCES[lang]:
            index = folder / f"{source.stem}.index"
            if not index.is_file():
                raise GlossaryError(f"{index}: no such dictionary; install it with `apt-get install {source.package}` "
                                    f"(or set MMEMBED_DICTD_DIR to the folder that has {source.stem}.index)")
            indexes.append((source, index))
        stop = _english_stop_words()
        cache = _cache_file(lang, [index for _, index in indexes])
        entries = _read_cache(cache)
        if entries is None:
            entries = _read_dictionaries(indexes, stop)
            _write_cache(cache, entries)
        return cls(lang, entries, stop)

    def spans(self, text: str) -> list[tuple[str, tuple[str, ...]]]:
        """The query's dictionary matches, left to right, longest phrase first: [(phrase, glosses), ...]."""
        ws, out, i = words(text), [], 0
        while i < len(ws):
            for n in range(min(MAX_PHRASE, len(ws) - i), 0, -1):
                phrase = " ".join(ws[i:i + n])
                if phrase in self.entries:
                    out.append((phrase, self.entries[phrase]))
                    i += n
                    break
            else:
                i += 1
        return out

    def gloss(self, text: str) -> Optional[str]:
        """The English gloss of a query, or None when no word of it is in the dictionary.
        A query that is one dictionary entry gives up to MAX_SENSES senses ('bird, airplane'); a longer one
        gives each matched span's first sense, in order ('dog big')."""
        found = self.spans(text)
        if not found:
            return None
        if len(found) == 1 and found[0][0] == " ".join(words(text)):
            return ", ".join(found[0][1][:MAX_SENSES])
        return " ".join(glosses[0] for _, glosses in found)


# per language: the smallest weight within 0.5 points of the best dev mean over t2i R@1, t2t R@1 and bitext
# accuracy, stage 29b (scripts/gloss_weight_sweep.py, results/gloss-sweep-dev). Where the backbone reads a language
# poorly (sw) the gloss weighs most; where it reads it well, a light touch.
DEFAULT_WEIGHTS: dict[str, float] = {"sw": 1.5, "hi": 0.5, "ar": 0.5, "de": 0.5, "es": 0.25, "fr": 0.25, "ru": 0.25}


def dictd_folder(dictd_dir: Optional[str | os.PathLike] = None) -> Path:
    return Path(dictd_dir or os.environ.get("MMEMBED_DICTD_DIR") or DEFAULT_DICTD_DIR)


@functools.lru_cache(maxsize=16)
def _cached(lang: str, folder: Path) -> Glossary:
    return Glossary.load(lang, folder)


_LOADING: dict[tuple[str, Path], threading.Lock] = {}
_LOADING_LOCK = threading.Lock()


def glossary_for(lang: str, dictd_dir: Optional[str | os.PathLike] = None) -> Glossary:
    """`Glossary.load`, read once per process and folder (the German dictionary takes seconds): for search.
    Concurrent first calls (server requests) wait for one read instead of each parsing the dictionary."""
    key = (Glossary.language(lang), dictd_folder(dictd_dir).resolve())
    with _LOADING_LOCK:
        lock = _LOADING.setdefault(key, threading.Lock())
    with lock:
        return _cached(*key)


def options_problem(is_text: bool, query_lang: Optional[str], gloss_weight: Optional[float]) -> Optional[tuple[str, str]]:
    """(parameter, message) when glossing options do not fit a query, else None: a weight without a language to
    gloss, or a language given for an image or vector query (search API and server alike)."""
    if gloss_weight is not None and query_lang is None:
        return "gloss_weight", "gloss_weight needs query_lang (the language of the query text to gloss)"
    if query_lang is not None and not is_text:
        return "query_lang", "query_lang glosses a query text; an image or vector query has no language"
    return None


def check_weight(weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)) \
            or not (weight >= 0 and np.isfinite(weight)):
        shown = weight if isinstance(weight, (int, float, np.number)) else f"{type(weight).__name__} {weight!r}"
        raise ValueError(f"gloss weight must be a finite number >= 0 (0: no glossing), got {shown}")
    return float(weight)


def weight_for(lang: str, weight: Optional[float] = None) -> float:
    """The gloss weight to use: `weight` checked, or the language's tuned one (DEFAULT_WEIGHTS) when None."""
    return check_weight(DEFAULT_WEIGHTS[lang] if weight is None else weight)


def fuse_gloss(query: np.ndarray, gloss: np.ndarray, has_gloss: np.ndarray, weight: float) -> np.ndarray:
    """normalize(q + weight * g) for rows with a gloss, q for the others; (n, d) unit rows in and out.
    A weight over 1 is applied as normalize(q / weight + g), the same direction: a huge weight (1e20) gives the
    gloss's vector, not an overflow to a zero or NaN vector."""
    weight = check_weight(weight)
    q, g = np.asarray(query, dtype=np.float64), np.asarray(gloss, dtype=np.float64) * has_gloss[:, None]
    mixed = np.where(has_gloss[:, None], q / weight + g, q) if weight > 1 else q + weight * g
    return (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)


def glossed_embeddings(encode: Callable[[list[str]], np.ndarray], texts: Sequence[str], glossary: Glossary,
                       weight: Optional[float] = None) -> np.ndarray:
    """(n, d) unit query vectors of `texts`, each moved toward the embedding of its English gloss.
    `encode` embeds a list of texts as (n, d) unit rows (an encoder's query side). `weight` None: the
    language's tuned weight (DEFAULT_WEIGHTS)."""
    weight = weight_for(glossary.lang, weight)
    texts = list(texts)
    glosses = [glossary.gloss(t) for t in texts] if weight > 0 else [None] * len(texts)
    found = [g for g in glosses if g is not None]
    # one encode call for the queries and their glosses: a single search query is one batch of two, not two calls
    vectors = np.asarray(encode(texts + found), dtype=np.float32)  # (n + m, d)
    query = vectors[:len(texts)]
    if not found:
        return query
    has = np.array([g is not None for g in glosses])
    gloss_vectors = np.zeros_like(query)
    gloss_vectors[has] = vectors[len(texts):]
    return fuse_gloss(query, gloss_vectors, has, weight)


def glossed_query(encode: Callable[[list[str]], np.ndarray], query: Any, query_lang: Optional[str],
                  gloss_weight: Optional[float] = None) -> np.ndarray:
    """(d,) unit vector of one search query text glossed in its `query_lang` (Collection.search); options that do
    not fit the query (options_problem) are refused."""
    problem = options_problem(isinstance(query, str), query_lang, gloss_weight)
    if problem is not None:
        raise ValueError(problem[1])
    return glossed_embeddings(encode, [query], glossary_for(query_lang), gloss_weight)[0]

