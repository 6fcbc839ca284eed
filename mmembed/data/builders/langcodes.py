"""Locale codes of Django and pycountry, mapped onto CLDR's spelling; and whether a text is in its language's script.

CLDR (and so the emoji/clip-art datasets) writes Simplified Chinese as `zh` and scripts as
`_Hant`/`_Latn`; Django and the iso-codes catalogs in pycountry use `zh_Hans`, `zh_CN`,
`sr@latin`, ... The same language must carry the same code in every dataset.
"""
from __future__ import annotations

import unicodedata

_TO_CLDR = {
    "zh_Hans": "zh",
    "zh_CN": "zh",
    "zh_TW": "zh_Hant",
    "zh_HK": "zh_Hant_HK",
    "sr@latin": "sr_Latn",
    "tt@iqtelif": "tt_Latn",  # İQTElif is the Latin Tatar alphabet
    "nb_NO": "nb",
    "bn_BD": "bn",
    "pa_PK": "pa_Arab",  # Punjabi in Pakistan is written in Shahmukhi (Arabic script)
}


def to_cldr(code: str) -> str:
    """'zh_Hans' -> 'zh', 'sr@latin' -> 'sr_Latn'; other codes unchanged."""
    return _TO_CLDR.get(code, code)


# The writing system of languages that are not written in Latin letters, as the first word of
# the Unicode character names of its letters ("TAMIL LETTER KA" -> "TAMIL"; Han ideographs are
# "CJK ..."). Why: some translation files carry text in a legacy font encoding that was decoded
# as Latin-1 (Tux Paint's Tamil lines are TSCII: "´Õ ¾À¡ø¦ÀðÊ"), which no model can read.
_SCRIPTS: dict[str, frozenset[str]] = {
    **{lang: frozenset({"DEVANAGARI"}) for lang in ("hi", "mr", "ne")},
    **{lang: frozenset({"ARABIC"}) for lang in ("ar", "fa", "ur", "ps", "pa_Arab")},
    **{lang: frozenset({"CYRILLIC"}) for lang in ("ru", "uk", "bg", "be", "mk", "kk", "ky", "mn", "tg")},
    **{lang: frozenset({"CJK"}) for lang in ("zh", "zh_Hant", "zh_Hant_HK", "yue")},
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "CJK"}),
    "ta": frozenset({"TAMIL"}), "te": frozenset({"TELUGU"}), "kn": frozenset({"KANNADA"}),
    "ml": frozenset({"MALAYALAM"}), "gu": frozenset({"GUJARATI"}), "pa": frozenset({"GURMUKHI"}),
    "bn": frozenset({"BENGALI"}), "or": frozenset({"ORIYA"}), "si": frozenset({"SINHALA"}),
    "el": frozenset({"GREEK"}), "he": frozenset({"HEBREW"}), "th": frozenset({"THAI"}),
    "lo": frozenset({"LAO"}), "km": frozenset({"KHMER"}), "my": frozenset({"MYANMAR"}),
    "ka": frozenset({"GEORGIAN"}), "hy": frozenset({"ARMENIAN"}), "am": frozenset({"ETHIOPIC"}),
}


def in_own_script(text: str, lang: str) -> bool:
    """False when `lang` (CLDR-style code) is written in a non-Latin script and `text` has letters
    but not one of that script ('´Õ ¾À¡ø¦ÀðÊ' as Tamil); True otherwise, also for languages whose
    script is not listed and for text without letters ('123')."""
    script = _SCRIPTS.get(lang)
    if script is None:
        return True
    letters = [ch for ch in text if ch.isalpha()]
    return not letters or any(unicodedata.name(ch, "").split(" ", 1)[0] in script for ch in letters)
