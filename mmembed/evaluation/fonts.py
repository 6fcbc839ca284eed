"""Fonts for plot labels in every script the datasets caption in (CLDR's ~130 locales).

matplotlib's default DejaVu Sans has Latin, Greek, Cyrillic, Hebrew, Georgian, Armenian and
most Arabic, but no CJK, Indic, Thai, Ethiopic... glyphs: those labels came out as boxes. Since
matplotlib 3.6 `font.family` may be a list, and each glyph is taken from the first family that
has it (3.11 shapes the runs with libraqm, so Arabic joins and Devanagari matras attach).

The fonts are registered by file path (`fontManager.addfont`): matplotlib's font cache is made
once per user and does not see fonts installed after it, and rebuilding it costs seconds.
Coverage was measured on every character of CLDR 41's annotations and character labels: with
these files only U+2EE3 (CJK RADICAL BONE, in yue) is missing.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

PRIMARY_FAMILY = "DejaVu Sans"  # matplotlib's default: Latin text keeps the look it had
_NOTO = Path("/usr/share/fonts/truetype/noto")


@dataclass(frozen=True)
class FallbackFont:
    path: Path
    package: str  # the Debian package that ships `path`
    scripts: str  # what it is here for (in the warning when it is missing)


def _noto(script: str, scripts: str) -> FallbackFont:
    return FallbackFont(_NOTO / f"NotoSans{script}-Regular.ttf", "fonts-noto-core", scripts)


# Order matters only where two fonts share a glyph: script fonts before the CJK fonts, whose
# Latin and punctuation would otherwise win over Noto's in mixed labels. Regular weights only:
# the plots use no bold text.
FALLBACK_FONTS: tuple[FallbackFont, ...] = (
    _noto("Arabic", "Arabic (ar, fa, ur, ps, sd)"),
    _noto("Devanagari", "Devanagari (hi, mr, ne, kok, sa)"),
    _noto("Bengali", "Bengali (bn, as, mni)"),
    _noto("Gujarati", "Gujarati"),
    _noto("Gurmukhi", "Gurmukhi (pa)"),
    _noto("Oriya", "Odia"),
    _noto("Tamil", "Tamil"),
    _noto("Telugu", "Telugu"),
    _noto("Kannada", "Kannada"),
    _noto("Malayalam", "Malayalam"),
    _noto("Sinhala", "Sinhala"),
    _noto("Thai", "Thai"),
    _noto("Lao", "Lao"),
    _noto("Khmer", "Khmer"),
    _noto("Myanmar", "Myanmar"),
    _noto("Ethiopic", "Ethiopic (am, ti)"),
    _noto("Cherokee", "Cherokee"),
    _noto("Chakma", "Chakma (ccp)"),
    _noto("OlChiki", "Ol Chiki (sat)"),
    _noto("Hebrew", "Hebrew"),
    _noto("Georgian", "Georgian"),
    _noto("Armenian", "Armenian"),
    FallbackFont(_NOTO / "NotoSans-Regular.ttf", "fonts-noto-core", "rare Latin and currency signs"),
    # Two small CJK fonts (1.6 + 1.8 MB) instead of fonts-noto-cjk (57 MB): Micro Hei has Hangul,
    # which Droid lacks; Droid has the rare Extension A ideographs of yue and zh_Hant_HK.
    FallbackFont(Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), "fonts-wqy-microhei",
                 "Chinese, Japanese, Korean"),
    FallbackFont(Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"), "fonts-droid-fallback",
                 "rare Chinese ideographs"),
)
# scripts/system-deps.sh installs these (a test checks it)
DEBIAN_PACKAGES: tuple[str, ...] = tuple(sorted({f.package for f in FALLBACK_FONTS}))


class MissingFontWarning(UserWarning):
    """Some fallback fonts are not installed: labels in their scripts draw as boxes."""


_families: dict[Path, str] = {}  # path -> family name, for fonts this process registered


def _register(path: Path) -> str:
    """Add one font file to matplotlib's font list (once per process); return its family name."""
    if path not in _families:
        from matplotlib import font_manager, ft2font

        font_manager.fontManager.addfont(path)  # a .ttc adds every face; face 0 is the one named
        _families[path] = ft2font.FT2Font(str(path)).family_name
    return _families[path]


def missing_fonts(fonts: Optional[Sequence[FallbackFont]] = None) -> list[FallbackFont]:
    """The fallback fonts whose file is absent (None: FALLBACK_FONTS, read at call time)."""
    return [f for f in (FALLBACK_FONTS if fonts is None else fonts) if not f.path.is_file()]


def font_families(fonts: Optional[Sequence[FallbackFont]] = None) -> list[str]:
    """The `font.family` list for plots: DejaVu Sans, then every installed fallback font.

    Missing fonts are left out with one MissingFontWarning naming the Debian packages.
    """
    fonts = FALLBACK_FONTS if fonts is None else fonts
    missing = missing_fonts(fonts)
    if missing:
        packages = " ".join(sorted({f.package for f in missing}))
        scripts = "; ".join(f.scripts for f in missing)
        warnings.warn(f"plot fonts not installed ({scripts}): labels in these scripts draw as boxes; "
                      f"install them with `apt-get install {packages}` (or run scripts/system-deps.sh)",
                      MissingFontWarning, stacklevel=2)
    families = [PRIMARY_FAMILY]
    for font in fonts:
        if font not in missing:
            family = _register(font.path)
            if family not in families:
                families.append(family)
    return families
