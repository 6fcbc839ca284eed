"""Emoji dataset: Noto Color Emoji renderings captioned by CLDR names, group names and keywords.

Concept = one emoji (code-point sequence as CLDR writes it, U+FE0F removed); its image is
`images/<hex-hex>.png`. Captions: the CLDR short name (kind="name"), the locale's name of the
emoji's Unicode group (kind="category", the zero-shot class names; see `emoji_groups`) and each
keyword (kind="keyword") in every locale file; language code = the CLDR file name (en, de, ...).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import Annotation, annotation_locales, read_annotations
from mmembed.data.builders.concepts import (Concept, LangSelection, lang_allowed, langs_option, langs_select_none,
                                            parse_langs, selection_key)
from mmembed.data.builders.emoji_groups import group_names, read_emoji_groups
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset
from mmembed.data.builders.sources import SourceInfo

NAME = "emoji"
DESCRIPTION = "Noto Color Emoji images with CLDR short names, group names and keywords in ~130 locales"
LICENSE = "OFL-1.1 (images: Noto Color Emoji); Unicode-DFS-2016 (captions: Unicode CLDR)"
FONT_SIZE = 109  # the only size of the font's colour bitmap strike (CBDT)
SKIN_TONES = range(0x1F3FB, 0x1F400)  # Fitzpatrick modifiers U+1F3FB..U+1F3FF


def concept_id(cp: str) -> str:
    return "emoji:" + "-".join(f"{ord(ch):04x}" for ch in cp)


def has_skin_tone(cp: str) -> bool:
    """A sequence with a skin-tone modifier (the bare modifier swatches themselves do not count)."""
    return len(cp) > 1 and any(ord(ch) in SKIN_TONES for ch in cp)


class EmojiRenderer:
    """Draws one emoji centred on a white square; None when the font has no glyph for it."""

    def __init__(self, font_path: Path, size: int = 160, ink: Optional[tuple[int, int, int]] = None):
        """`ink`: the colour of a monochrome font's glyphs (None: a colour font's own colours)."""
        from PIL import ImageFont, features

        if size < 16:
            raise ValueError(f"emoji image size must be >= 16 px, got {size}")
        # Raqm shapes ZWJ sequences, flags and keycaps into one ligature glyph; without it they
        # come out as several glyphs and are skipped by the width check below.
        self.layout = "raqm" if features.check("raqm") else "basic"
        engine = ImageFont.Layout.RAQM if self.layout == "raqm" else ImageFont.Layout.BASIC
        self.font = ImageFont.truetype(str(font_path), FONT_SIZE, layout_engine=engine)
        self.size = size
        self.ink = None if ink is None else (*ink, 255)

    def has_glyph(self, cp: str) -> bool:
        """Cheap test without drawing: the layout box has no height when the font has no glyph."""
        left, top, right, bottom = self.font.getbbox(cp)
        return bottom > top and right - left <= 1.5 * FONT_SIZE

    def render(self, cp: str):
        from PIL import Image, ImageDraw

        canvas = Image.new("RGBA", (FONT_SIZE * 4, FONT_SIZE * 2), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((8, 8), cp, font=self.font, fill=self.ink, embedded_color=True)
        bbox = canvas.getchannel("A").getbbox()
        if bbox is None:  # nothing drawn: the font has no glyph (CLDR also names plain symbols)
            return None
        glyph = canvas.crop(bbox)
        if glyph.width > 1.5 * FONT_SIZE:  # not ligated: several glyphs side by side
            return None
        margin = max(1, self.size // 16)
        inner = self.size - 2 * margin
        if max(glyph.size) > inner:
            glyph.thumbnail((inner, inner), Image.Resampling.LANCZOS)
        image = Image.new("RGBA", (self.size, self.size), (255, 255, 255, 255))
        image.alpha_composite(glyph, ((self.size - glyph.width) // 2, (self.size - glyph.height) // 2))
        return image.convert("RGB")


def emoji_concept(cp: str, image: str, per_locale: dict[str, dict[str, Annotation]], source: str,
                  group: Optional[str], names: dict[str, dict[str, str]]) -> Concept:
    """`group`: the emoji's group type (None: labels.txt has none); `names`: locale -> group names."""
    concept = Concept(concept_id(cp), image=image)
    for locale in sorted(per_locale):
        ann = per_locale[locale].get(cp)
        # no annotation, no group name either: it would be the concept's only caption in that
        # language, and t2i/i2t (which fall back to categories) would query with a class name
        if ann is None:
            continue
        if ann.name:  # the name first: a keyword repeating it is then dropped as a duplicate
            concept.add(ann.name, locale, "name", source)
        # the class name before the keywords, so that a keyword equal to it cannot drop it
        if group is not None and group in names.get(locale, {}):
            concept.add(names[locale][group], locale, "category", source)
        for word in ann.keywords:
            concept.add(word, locale, "keyword", source)
    return concept


@dataclass(frozen=True)
class EmojiCaptions:
    """What CLDR says about every emoji in the chosen locales: the captions `emoji_concept` turns into records."""

    lang_set: Optional[LangSelection]  # parse_langs of the builder's `langs` (None: every locale)
    locales: list[str]
    per_locale: dict[str, dict[str, Annotation]]  # locale -> emoji -> its name and keywords
    groups: dict[str, str]  # emoji -> its Unicode group type (labels.txt)
    names: dict[str, dict[str, str]]  # locale -> group type -> the locale's group name
    info: SourceInfo

    def emoji(self) -> set[str]:
        """Every emoji some chosen locale annotates."""
        return {cp for anns in self.per_locale.values() for cp in anns}

    def concept(self, cp: str, image: str) -> Concept:
        source = f"{self.info.package} {self.info.version}"
        return emoji_concept(cp, image, self.per_locale, source, self.groups.get(cp), self.names)


def read_emoji_captions(dataset: str, langs: Optional[str | Sequence[str]]) -> EmojiCaptions:
    """CLDR's annotations and group names in the `langs` locales; `dataset` names the build in the error when `langs`
    selects no locale."""
    common = sources.CLDR.require()
    lang_set = parse_langs(langs)
    locales = [loc for loc in annotation_locales(common) if lang_allowed(loc, lang_set)]
    if not locales:
        raise langs_select_none(dataset, lang_set, lang_set.seen)  # lang_set is not None: None allows all
    groups = read_emoji_groups(common)
    return EmojiCaptions(lang_set, locales, {loc: read_annotations(common, loc) for loc in locales}, groups,
                         group_names(common, locales, set(groups.values())), sources.CLDR.info())


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    size: int = 160,
    skin_tones: bool = False,
) -> Path:
    """Build the emoji dataset into `out`. `limit` keeps that many renderable emoji (chosen by a
    stable hash); `langs` keeps only those CLDR locales; `skin_tones` adds the ~1,700 skin-tone
    variants (near-duplicate images with template captions)."""
    font_path = sources.NOTO_EMOJI.require()
    cldr = read_emoji_captions(NAME, langs)

    candidates = sorted(cldr.emoji())
    excluded_skin = [cp for cp in candidates if has_skin_tone(cp)] if not skin_tones else []
    candidates = [cp for cp in candidates if skin_tones or not has_skin_tone(cp)]
    if limit is not None:  # try in hash order until `limit` emoji rendered
        candidates.sort(key=lambda cp: selection_key(concept_id(cp)))
    renderer = EmojiRenderer(font_path, size)

    with staging_dir(out) as tmp:
        (tmp / "images").mkdir()
        kept: dict[str, str] = {}
        unrenderable = 0
        for cp in candidates:
            if limit is not None and len(kept) >= limit:
                break
            image = renderer.render(cp)
            if image is None:
                unrenderable += 1
                continue
            rel = f"images/{concept_id(cp).split(':', 1)[1]}.png"
            image.save(tmp / rel, format="PNG")
            kept[cp] = rel
        records = [
            rec for cp in sorted(kept)
            for rec in cldr.concept(cp, kept[cp]).records(LICENSE)
        ]
        card = DatasetCard(
            dataset=NAME,
            description=DESCRIPTION,
            license=LICENSE,
            sources=[sources.NOTO_EMOJI.info(), cldr.info],
            options={"limit": limit, "langs": langs_option(cldr.lang_set),
                     "size": size, "skin_tones": skin_tones},
            notes=[
                "Keywords are per-locale lists, not translations of each other; a keyword equal "
                "to the name is dropped (the name record is kept).",
                "annotationsDerived names (flags, keycaps, families, skin tones) are built by CLDR "
                "from templates such as 'flag: Germany'.",
                "Regional locale files (en_GB, de_CH, ...) hold only entries that differ from "
                "their parent locale, so they have few records.",
                "CLDR entries marked draft=unconfirmed/provisional, '↑↑↑' and empty are skipped.",
                "CLDR also names plain symbols (arrows, currency signs, punctuation) that the "
                "emoji font cannot draw: those are skipped (stats.unrenderable).",
                "category = the locale's name of the emoji's Unicode group (CLDR main/*.xml "
                "characterLabel), the group from CLDR properties/labels.txt, which stops at "
                "Emoji 11.0: newer emoji and skin-tone variants have no category record.",
                "Group names are the locale's own: regional files (es_419, pt_PT) and ti name "
                "only some groups (stats.group_locales_partial) and the rest are not inherited.",
            ],
            stats={"unrenderable": unrenderable, "skin_tone_variants_excluded": len(excluded_skin),
                   "emoji": len(kept), "locales": len(cldr.locales), "text_layout": renderer.layout,
                   "emoji_with_group": sum(cp in cldr.groups for cp in kept),
                   "group_locales": len(cldr.names),
                   "group_locales_partial": {loc: sorted(n) for loc, n in cldr.names.items()
                                             if len(n) < len(set(cldr.groups.values()))}},
        )
        write_dataset(tmp, records, card, langs=cldr.lang_set)
    return Path(out)
