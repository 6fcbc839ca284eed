"""Emoji in two styles (EVAL ONLY): each held-out emoji drawn by Noto Color Emoji and by Symbola's black outlines.

Concept = one emoji, with the emoji dataset's id, so it lands in the same split (`concepts.assign_split`): only the
dev and test concepts are written (train.jsonl stays empty), so neither drawing of an emoji any model trained on is
here. Per concept two images, `color/<hex>.png` (the emoji dataset's rendering) and `outline/<hex>.png`, each with the
emoji's captions (CLDR names, group names, keywords; the emoji builder's `_concept`). The colour drawing comes first in
the manifest ("color/" sorts before "outline/"): the i2i eval task takes a concept's first image as its reference, so
it asks "find the colour emoji for this black-and-white drawing" (evaluation/tasks.py). Only single-code-point emoji
both fonts draw are kept: Symbola has no ZWJ sequences, flags or keycaps, and nothing newer than Unicode 8-9.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.concepts import assign_split, langs_option, selection_key
from mmembed.data.builders.emoji import FONT_SIZE, EmojiRenderer, concept_id, read_emoji_captions
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset

NAME = "emoji-styles"
DESCRIPTION = ("EVAL ONLY: held-out emoji drawn twice, Noto Color Emoji and Symbola outlines, with CLDR captions "
               "(image -> image across styles)")
LICENSE = ("OFL-1.1 (colour images: Noto Color Emoji); free for any use (outline images: Symbola, George Douros); "
           "Unicode-DFS-2016 (captions: Unicode CLDR)")
EVAL_SPLITS = ("dev", "test")
STYLES = ("color", "outline")  # folder names; their sort order puts the reference (colour) drawing first
NOTDEF_PROBE = "\U0010fffd"  # a private-use code point no font draws: what a missing glyph looks like


class OutlineFont:
    """Symbola's glyph test: Pillow draws a missing glyph as the font's .notdef box, so a glyph whose mask equals the
    mask of a code point no font has is missing."""

    def __init__(self, font_path: Path, size: int):
        from PIL import ImageFont

        self.font = ImageFont.truetype(str(font_path), size)
        self.notdef = self._mask(NOTDEF_PROBE)

    def _mask(self, cp: str) -> tuple[tuple[int, int], bytes]:
        mask = self.font.getmask(cp)
        return mask.size, bytes(mask)

    def has_glyph(self, cp: str) -> bool:
        return self._mask(cp) != self.notdef


def single_code_point(cp: str) -> Optional[str]:
    """The emoji as one code point (its variation selector U+FE0F dropped), or None for a sequence."""
    bare = cp.replace("\ufe0f", "")
    return bare if len(bare) == 1 else None


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    size: int = 160,
) -> Path:
    """Build emoji-styles into `out`. `limit` keeps that many emoji (by a stable hash); `langs` those CLDR locales."""
    color_font = sources.NOTO_EMOJI.require()
    outline_path = sources.SYMBOLA.require()
    cldr = read_emoji_captions(NAME, langs)

    renderers = {"color": EmojiRenderer(color_font, size), "outline": EmojiRenderer(outline_path, size, ink=(0, 0, 0))}
    outline_glyphs = OutlineFont(outline_path, FONT_SIZE)
    held_out = [cp for cp in cldr.emoji() if assign_split(concept_id(cp)) in EVAL_SPLITS]
    candidates = sorted(held_out, key=lambda cp: selection_key(concept_id(cp)))
    skipped = {"sequence": 0, "no_outline_glyph": 0, "unrenderable": 0}

    with staging_dir(out) as tmp:
        for style in STYLES:
            (tmp / style).mkdir()
        kept: dict[str, dict[str, str]] = {}  # emoji -> style -> image path
        for cp in candidates:
            if limit is not None and len(kept) >= limit:
                break
            bare = single_code_point(cp)
            if bare is None:
                skipped["sequence"] += 1
                continue
            if not outline_glyphs.has_glyph(bare):
                skipped["no_outline_glyph"] += 1
                continue
            images = {style: renderers[style].render(cp if style == "color" else bare) for style in STYLES}
            if any(image is None for image in images.values()):
                skipped["unrenderable"] += 1
                continue
            hexname = concept_id(cp).split(":", 1)[1]
            kept[cp] = {}
            for style, image in images.items():
                kept[cp][style] = f"{style}/{hexname}.png"
                image.save(tmp / kept[cp][style], format="PNG")
        records = [
            rec for cp in sorted(kept) for style in STYLES
            for rec in cldr.concept(cp, kept[cp][style]).records(LICENSE)
        ]
        card = DatasetCard(
            dataset=NAME,
            description=DESCRIPTION,
            license=LICENSE,
            sources=[sources.NOTO_EMOJI.info(), sources.SYMBOLA.info(), cldr.info],
            options={"limit": limit, "langs": langs_option(cldr.lang_set), "size": size},
            notes=[
                "Eval only: the emoji dataset's dev and test concepts (same ids, same split); train.jsonl is empty.",
                "Two images per concept with the same captions: color/ (Noto Color Emoji, as the emoji dataset) and "
                "outline/ (Symbola, black on white). The colour one is first in the manifest: i2i's reference.",
                "Symbola draws some emoji as text-style symbols (hearts, suns, arrows) close to their colour form and "
                "some as small outline sketches; its style is not Noto's, which is the point.",
                "Single code points only (U+FE0F dropped): Symbola has no ZWJ sequences, flags, keycaps or skin tones.",
            ],
            stats={"emoji": len(kept), "locales": len(cldr.locales), "skipped": skipped,
                   "text_layout": renderers["color"].layout},
        )
        write_dataset(tmp, records, card, langs=cldr.lang_set)
    return Path(out)
