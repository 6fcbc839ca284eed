"""Locale codes of Django and pycountry, mapped onto CLDR's spelling.

CLDR (and so the emoji/clip-art datasets) writes Simplified Chinese as `zh` and scripts as
`_Hant`/`_Latn`; Django and the iso-codes catalogs in pycountry use `zh_Hans`, `zh_CN`,
`sr@latin`, ... The same language must carry the same code in every dataset.
"""
from __future__ import annotations

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
