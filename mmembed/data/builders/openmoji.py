"""OpenMoji dataset: the emoji (and OpenMoji's own extra icons) drawn in a second hand, OpenMoji's flat outlined style.

Why: every emoji picture in training is Noto's; a second drawing of the same concept teaches the image side what an
emoji shows rather than how Noto draws it, and OpenMoji's ~540 extra icons (goldfish, headache, drip coffee maker,
windsurfing) are concepts no other source draws.

Concepts:
- an emoji CLDR annotates: the `emoji` dataset's id (`emoji:<hex>`), so the same split (`concepts.assign_split`), and
  its CLDR captions in every chosen locale (the `emoji` builder's records: names, group names, keywords). No held-out
  emoji is drawn in train by either font.
- anything else (OpenMoji's extras, sequences and emoji newer than CLDR 41): `openmoji:<hexcode>`, split by that id,
  captioned in English by OpenMoji's annotation (kind "name") and tags (kind "keyword"). A train concept whose name is,
  or holds as whole words, the English name of a held-out emoji ('hacker cat' while 'cat' is held out) is dropped, so
  no test emoji's name is trained on through another drawing.
Images: `images/<hexcode>.png`, the colour SVG rendered by resvg on white. Skin-tone variants are skipped (as `emoji`).
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import read_annotations
from mmembed.data.builders.concepts import Concept, assign_split, lang_allowed, langs_option, selection_key
from mmembed.data.builders.emoji import concept_id as emoji_concept_id
from mmembed.data.builders.emoji import read_emoji_captions
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset

NAME = "openmoji"
DESCRIPTION = ("OpenMoji drawings of the emoji (CLDR captions in ~130 locales, the emoji dataset's splits) and of "
               "~540 extra icons (English annotations)")
LICENSE = "CC-BY-SA-4.0 (images and extra icons' captions: OpenMoji); Unicode-DFS-2016 (emoji captions: Unicode CLDR)"
HELD_OUT = ("dev", "test")


@dataclass(frozen=True)
class OpenMojiEntry:
    """One row of the package's data/openmoji.csv."""

    emoji: str  # the characters ('' for OpenMoji's private-use extras)
    hexcode: str  # '1F408', 'E000', '1F468-200D-1FAA9': the SVG's file name
    group: str  # 'animals-nature', 'extras-openmoji', ...
    annotation: str  # English name
    tags: tuple[str, ...]  # English keywords (Unicode's, then OpenMoji's own)
    skin_tone: bool

    @property
    def cldr_key(self) -> str:
        return self.emoji.replace("\ufe0f", "")


def _tags(*fields: str) -> tuple[str, ...]:
    out: list[str] = []
    for field in fields:
        for tag in field.split(","):
            tag = " ".join(tag.split())
            if tag and tag.lower() not in (t.lower() for t in out):
                out.append(tag)
    return tuple(out)


def read_entries(package: Path) -> list[OpenMojiEntry]:
    table = package / "data" / "openmoji.csv"
    try:
        rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as why:
        raise sources.MissingSourceError(f"cannot read {table} ({why}); reinstall it with "
                                         f"`{sources.OPENMOJI.install_hint}`") from why
    missing = {"emoji", "hexcode", "group", "annotation", "tags", "openmoji_tags", "skintone"} - set(rows[0] if rows else ())
    if missing:
        raise sources.MissingSourceError(f"{table} has no column(s) {', '.join(sorted(missing))}: not the OpenMoji "
                                         f"{sources.OPENMOJI.version} layout; install `{sources.OPENMOJI.install_hint}`")
    return [OpenMojiEntry(r["emoji"], r["hexcode"], r["group"], " ".join(r["annotation"].split()),
                          _tags(r["tags"], r["openmoji_tags"]), bool(r["skintone"].strip()))
            for r in rows if r["hexcode"].strip()]


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"\w+", text.lower())) + " "


def held_out_names(common: Path) -> list[str]:
    """English CLDR names of the dev and test emoji, as padded word strings (' cat ', ' red apple ')."""
    english = read_annotations(common, "en")
    names = {_words(a.name) for cp, a in english.items() if a.name and assign_split(emoji_concept_id(cp)) in HELD_OUT}
    return sorted(n for n in names if n.strip())


def names_held_out(name: str, held_out: Sequence[str]) -> Optional[str]:
    """The held-out name that `name` is or holds as whole words, or None."""
    padded = _words(name)
    return next((h.strip() for h in held_out if h in padded), None)


class SvgRenderer:
    """An SVG drawn centred on a white square by resvg (no system fonts: OpenMoji's SVGs are paths)."""

    def __init__(self, size: int):
        sources.RESVG.require()
        if size < 16:
            raise ValueError(f"openmoji image size must be >= 16 px, got {size}")
        self.size = size

    def render(self, svg: Path):
        """The RGB picture, or None when resvg cannot read the file (a damaged SVG: the build skips it)."""
        import resvg_py
        from PIL import Image

        try:
            png = resvg_py.svg_to_bytes(svg_path=str(svg), width=self.size, height=self.size, background="#ffffff",
                                        skip_system_fonts=True)
        except ValueError:  # resvg's parse errors ('unexpected end of stream') name no file: the caller counts it
            return None
        with Image.open(io.BytesIO(bytes(png))) as image:
            return image.convert("RGB")


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    size: int = 160,
) -> Path:
    """Build the openmoji dataset into `out`. `limit` keeps that many drawings (by a stable hash); `langs` the CLDR
    locales of the emoji's captions (the extra icons are captioned in English only, kept when `langs` allows en)."""
    package = sources.OPENMOJI.require()
    renderer = SvgRenderer(size)
    entries = read_entries(package)
    cldr = read_emoji_captions(NAME, langs)
    annotated = cldr.emoji()
    held_out = held_out_names(sources.CLDR.require())
    om_source = f"openmoji {sources.OPENMOJI.info().version}"
    english = lang_allowed("en", cldr.lang_set)

    def concept_of(entry: OpenMojiEntry) -> str:
        return emoji_concept_id(entry.cldr_key) if entry.cldr_key in annotated else f"openmoji:{entry.hexcode.lower()}"

    candidates = sorted((e for e in entries if not e.skin_tone), key=lambda e: e.hexcode)
    if limit is not None:
        candidates.sort(key=lambda e: selection_key(concept_of(e)))
    stats = {"skin_tone_variants_skipped": sum(e.skin_tone for e in entries), "no_svg": 0, "no_caption": 0,
             "names_a_held_out_emoji": {}, "unrenderable": [], "emoji": 0, "extra_icons": 0}
    with staging_dir(out) as tmp:
        (tmp / "images").mkdir()
        records, seen = [], set()
        for entry in candidates:
            if limit is not None and len(seen) >= limit:
                break
            concept = concept_of(entry)
            if concept in seen:  # two rows for one emoji (with and without U+FE0F): the first drawing is kept
                continue
            svg = package / "color" / "svg" / f"{entry.hexcode}.svg"
            if not svg.is_file():
                stats["no_svg"] += 1
                continue
            rel = f"images/{entry.hexcode.lower()}.png"
            if concept.startswith("emoji:"):
                drawn = cldr.concept(entry.cldr_key, rel)
            else:
                clash = names_held_out(entry.annotation, held_out) if assign_split(concept) == "train" else None
                if clash is not None:
                    stats["names_a_held_out_emoji"][entry.annotation] = clash
                    continue
                drawn = Concept(concept, image=rel)
                if english:
                    drawn.add(entry.annotation, "en", "name", om_source)
                    for tag in entry.tags:
                        drawn.add(tag, "en", "keyword", om_source)
            concept_records = drawn.records(LICENSE)
            if not concept_records:  # no caption in the chosen locales
                stats["no_caption"] += 1
                continue
            image = renderer.render(svg)
            if image is None:
                stats["unrenderable"].append(entry.hexcode)
                continue
            image.save(tmp / rel, format="PNG")
            records += concept_records
            seen.add(concept)
            stats["emoji" if concept.startswith("emoji:") else "extra_icons"] += 1
        card = DatasetCard(
            dataset=NAME,
            description=DESCRIPTION,
            license=LICENSE,
            sources=[sources.OPENMOJI.info(), sources.RESVG.info(), cldr.info],
            options={"limit": limit, "langs": langs_option(cldr.lang_set), "size": size},
            notes=[
                "Emoji CLDR annotates keep the emoji dataset's concept id and split and get its CLDR captions; "
                "everything else is `openmoji:<hexcode>` with OpenMoji's English annotation and tags.",
                "OpenMoji's own tags are mostly English but a few are German (e.g. 'Diskjockey', 'schwäbisch'); "
                "they are recorded as en.",
                "Extra icons include brand logos and UI symbols (subgroups 'brand', 'ui-element').",
                "SVGs resvg cannot read are skipped and listed (stats.unrenderable: their hexcodes).",
                "A train extra icon whose name is or holds the English name of a dev/test emoji is dropped "
                "(stats.names_a_held_out_emoji: its name -> the held-out name).",
            ],
            stats=stats,
        )
        write_dataset(tmp, records, card, langs=cldr.lang_set)
    return Path(out)
