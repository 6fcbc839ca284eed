"""Clip-art dataset: Open Clip Art drawings with English metadata captions, plus CLDR names.

Concept = one distinct drawing (see `openclipart.find_drawings`). English captions: the SVG title
(kind="title"), its keywords (kind="keyword"), the leaf of every category folder it sits in
(kind="category"), and, where the title is missing or is a collection title, the cleaned file
name (kind="filename"). Multilingual captions (kind="cldr_name"): see `cldr_lexicon`; only
emoji that the emoji font draws take part (the font is read for that alone).
"""
from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import BinaryIO, Optional, Sequence

from mmembed.data.builders import sources
from mmembed.data.builders.cldr import annotation_locales
from mmembed.data.builders.cldr_lexicon import CldrLexicon, build_lexicon
from mmembed.data.builders.concepts import Concept, lang_allowed, langs_option, parse_langs, select
from mmembed.data.builders.emoji import EmojiRenderer
from mmembed.data.builders.openclipart import (
    Drawing, SvgMetadata, find_drawings, png_size, read_svg_metadata,
)
from mmembed.data.builders.output import DatasetCard, staging_dir, write_dataset

NAME = "clipart"
DESCRIPTION = "Open Clip Art drawings with English titles/keywords/categories and CLDR names"
LICENSE = "public-domain (Open Clip Art); Unicode-DFS-2016 (cldr_name captions)"
# A title shared by this many drawings names a collection ("Lemon SVG theme"), not the drawing.
COLLECTION_TITLE_MIN = 20
# One folder, shapes/stars, holds 1,378 generated star polygons (a fifth of the library): by
# default no category folder gives more than this many drawings (chosen by stable hash).
MAX_PER_CATEGORY = 200
# A handful of PNGs are 10k x 16k px or more (up to 623 Mpx): decoding one takes gigabytes.
MAX_SOURCE_PIXELS = 40_000_000
_CREDIT_PREFIX = re.compile(r"^clip ?art by [^-]+ - ", re.IGNORECASE)  # 'Clipart by X - pear'
# Tags written by the tools that made the library, not by people describing the drawing.
STOP_KEYWORDS = frozenset({
    "hash", "magick", "theme", "lemon theme icon", "mapsym", "unsorted", "appicon",
    "united nations member", "clip art", "clipart", "openclipart", "svg", "image", "media",
})


def clean(text: str) -> str:
    """'signs_and_symbols' -> 'signs and symbols'; collapses whitespace."""
    return " ".join(text.replace("_", " ").split())


def clean_title(title: Optional[str]) -> Optional[str]:
    """'Clipart by Nicu Buculei - pear' -> 'pear'; None for a missing or empty title."""
    if not title:
        return None
    return _CREDIT_PREFIX.sub("", clean(title)) or None


def filename_caption(stem: str, creator: Optional[str]) -> Optional[str]:
    """'pesca_architetto_frances_01' by 'Architetto Francesco Rollandin' -> 'pesca'.

    The packagers named files '<title>_<author, truncated>_<nn>': trailing numbers and trailing
    tokens that start the creator's name words are dropped.
    """
    tokens = [t for t in re.split(r"[_\-\s]+", stem.lower()) if t]
    author = [w for w in re.split(r"\W+", (creator or "").lower()) if w]
    while tokens and (tokens[-1].isdigit() or any(len(tokens[-1]) >= 2 and w.startswith(tokens[-1]) for w in author)):
        tokens.pop()
    tokens = [re.sub(r"\d+$", "", t) for t in tokens]  # 'check_in1' -> 'check in'
    text = " ".join(t for t in tokens if t)
    return text if len(text) >= 3 else None


def check_max_side(max_side: int) -> None:
    """Builders that write images take `max_side`; below 16 px nothing is left to see."""
    if max_side < 16:
        raise ValueError(f"max_side must be >= 16 px, got {max_side}")


def flatten(png: Path | BinaryIO, max_side: int):
    """RGB on white, longest side <= max_side (composited before resizing: no dark halos)."""
    from PIL import Image

    with Image.open(png) as im:
        rgba = im.convert("RGBA")
    image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    image.alpha_composite(rgba)
    image = image.convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def write_flat_image(source: Path | BinaryIO, folder: Path, image_id: str, max_side: int) -> str:
    """Write `source` flattened (see `flatten`) to folder/images/<image_id>.png; return that path
    relative to `folder`, as manifests store it."""
    rel = f"images/{image_id}.png"
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    flatten(source, max_side).save(folder / rel, format="PNG")
    return rel


def _english_captions(concept: Concept, drawing: Drawing, meta: SvgMetadata,
                      collection_titles: set[str], source: str) -> list[tuple[str, str]]:
    """Add the English captions; return (word, kind) pairs to try against the CLDR lexicon."""
    words = []
    title = clean_title(meta.title)
    if title and title.casefold() not in collection_titles:
        concept.add(title, "en", "title", source)
        words.append((title, "title"))
    else:
        stem = filename_caption(Path(drawing.id).name, meta.creator)
        if stem:
            concept.add(stem, "en", "filename", source)
            words.append((stem, "filename"))
    creator = (meta.creator or "").casefold()
    for kw in map(clean, meta.keywords):
        folded = kw.casefold()
        # numbers ('11') and tool tags carry no meaning; the author's name is not the subject
        if re.search(r"[^\W\d_]", kw) and folded not in STOP_KEYWORDS and folded != creator:
            concept.add(kw, "en", "keyword", source)
            words.append((kw, "keyword"))
    for category in drawing.categories:
        leaf = clean(category.rsplit("/", 1)[-1].replace("-", " "))
        concept.add(leaf, "en", "category", source)
        words.append((leaf, "category"))
    return words


def _cldr_captions(concept: Concept, words: list[tuple[str, str]], lexicon: CldrLexicon,
                   source: str, matched: Counter) -> None:
    """Add every locale's name of each emoji an English word matches (once per emoji).

    A match through a CLDR keyword is taken from the title or file name only: drawings' own
    keywords and folders are broad ('flag', 'europe') and hit unrelated emoji that happen to
    own that keyword ('transgender flag', 'globe showing Europe-Africa').
    """
    seen = set()
    for word, kind in words:
        m = lexicon.match(word)
        if m is None or m.cp in seen or (m.via == "keyword" and kind not in ("title", "filename")):
            continue
        seen.add(m.cp)
        matched[m.word] += 1
        cps = " ".join(f"U+{ord(c):04X}" for c in m.cp)
        via = f"{source}; matched en {m.word!r} to the CLDR {m.via} of {cps}"
        for locale, name in sorted(lexicon.names.get(m.cp, {}).items()):
            concept.add(name, locale, "cldr_name", via)


def cap_per_category(drawings: list[Drawing], cap: Optional[int]) -> list[Drawing]:
    """At most `cap` drawings per (most specific) category folder, chosen by stable hash."""
    if cap is None:
        return drawings
    groups: dict[str, list[Drawing]] = defaultdict(list)
    for d in drawings:
        groups[d.main_category].append(d)
    return sorted((d for g in groups.values() for d in select(g, lambda d: d.id, cap, salt="cap")),
                  key=lambda d: d.id)


def _read_metadata(drawings: list[Drawing]) -> tuple[dict[str, SvgMetadata], int]:
    metas, unreadable = {}, 0
    for d in drawings:
        try:
            metas[d.id] = read_svg_metadata(d.svg) if d.svg else SvgMetadata(None, (), None)
        except ValueError:  # one broken SVG among thousands: count it, keep its image
            unreadable += 1
            metas[d.id] = SvgMetadata(None, (), None)
    return metas, unreadable


def build(
    out: str | os.PathLike,
    *,
    limit: Optional[int] = None,
    langs: Optional[str | Sequence[str]] = None,
    max_side: int = 224,
    max_per_category: Optional[int] = MAX_PER_CATEGORY,
) -> Path:
    """Build the clip-art dataset into `out`: `limit` drawings chosen by a stable hash (all by
    default, after the `max_per_category` cap), captions in `langs` only (default: English plus
    every CLDR locale)."""
    png_root = sources.OPENCLIPART_PNG.require()
    svg_root = sources.OPENCLIPART_SVG.require()
    common = sources.CLDR.require()
    font = sources.NOTO_EMOJI.require()
    check_max_side(max_side)
    lang_set = parse_langs(langs)
    infos = [sources.OPENCLIPART_PNG.info(), sources.OPENCLIPART_SVG.info(), sources.CLDR.info(),
             sources.NOTO_EMOJI.info()]
    art_source = f"{infos[1].package} {infos[1].version}"
    cldr_source = f"{infos[2].package} {infos[2].version}"

    library, oversized = [], []
    for d in find_drawings(png_root, svg_root):
        w, h = png_size(d.png)
        (oversized if w * h > MAX_SOURCE_PIXELS else library).append(d)
    metas, unreadable = _read_metadata(library)  # all of them: collection titles need the whole library
    title_counts = Counter(t.casefold() for t in (clean_title(m.title) for m in metas.values()) if t)
    collection_titles = {t for t, n in title_counts.items() if n >= COLLECTION_TITLE_MIN}
    lexicon = build_lexicon(common, [l for l in annotation_locales(common) if lang_allowed(l, lang_set)],
                            keep=EmojiRenderer(font).has_glyph)
    drawings = select(cap_per_category(library, max_per_category), lambda d: d.id, limit)

    matched: Counter = Counter()
    with staging_dir(out) as tmp:
        records = []
        for drawing in drawings:
            rel = write_flat_image(drawing.png, tmp, drawing.id, max_side)
            concept = Concept(f"clipart:{drawing.id}", image=rel)
            words = _english_captions(concept, drawing, metas[drawing.id], collection_titles, art_source)
            _cldr_captions(concept, words, lexicon, cldr_source, matched)
            concept.captions = [c for c in concept.captions if lang_allowed(c.lang, lang_set)]
            records.extend(concept.records(LICENSE))
        card = DatasetCard(
            dataset=NAME, description=DESCRIPTION, license=LICENSE, sources=infos,
            options={"limit": limit, "langs": langs_option(lang_set),
                     "max_side": max_side, "max_per_category": max_per_category},
            notes=[
                "cldr_name captions are a KNOWN NOISE source: an exact English word match says "
                "nothing about word sense ('mouse' the animal vs the device, 'bat' the animal vs "
                "the club) nor about which of several drawings' subjects is meant; each record's "
                "`source` names the matched English word and emoji.",
                f"Titles shared by >= {COLLECTION_TITLE_MIN} drawings are collection titles "
                "('Lemon SVG theme', 'gramastar') and are replaced by the cleaned file name "
                "(kind=filename); a 'Clipart by NAME - ' prefix is removed from titles.",
                "Keywords written by tools (hash, magick, mapsym, ...), numbers, and keywords "
                "equal to the creator's name are dropped; the rest are the authors' own, often "
                "loose or non-English, tags (e.g. Italian titles like 'Gatto Nero').",
                f"Drawings whose PNG exceeds {MAX_SOURCE_PIXELS:,} pixels are skipped "
                "(stats.oversized_skipped): decoding them needs gigabytes.",
                "Small icons are not upscaled: some images are 48 px or less on their long side.",
                "Category leaves are folder names and can be generic ('apps', 'simple', 'actions').",
                f"At most {max_per_category} drawings per category folder (shapes/stars alone "
                "holds 1,378 generated star polygons).",
            ],
            stats={"drawings_in_library": len(library) + len(oversized), "drawings": len(drawings),
                   "oversized_skipped": [d.id for d in oversized],
                   "svg_unreadable": unreadable, "collection_titles": sorted(collection_titles),
                   "cldr_matches": dict(sorted(matched.items()))},
        )
        write_dataset(tmp, records, card, langs=lang_set)
    return Path(out)
