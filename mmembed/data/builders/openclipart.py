"""Reading the Debian Open Clip Art packages: the drawings, their category folders, SVG metadata.

The PNG tree (`openclipart-png`) and the SVG tree (`openclipart-svg`) mirror each other. One
drawing often sits in several category folders (as a copy or a symlink), and different drawings
can share a file name, so a drawing is identified by the bytes of its PNG.
"""
from __future__ import annotations

import hashlib
import os
import struct
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

_DC = "{http://purl.org/dc/elements/1.1/}"
_CC = "{http://web.resource.org/cc/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


@dataclass(frozen=True)
class Drawing:
    id: str  # path of its first copy (sorted), relative to the tree, without extension
    png: Path  # that first copy
    svg: Optional[Path]  # the mirrored SVG, when the SVG package has it
    categories: tuple[str, ...]  # folder of every copy, e.g. ("animals", "animals/amphibian")

    @property
    def main_category(self) -> str:
        """The most specific folder ('animals/amphibian' over 'animals'); '' at the top level."""
        return max(self.categories, key=lambda c: (c.count("/"), c), default="")


@dataclass(frozen=True)
class SvgMetadata:
    title: Optional[str]
    keywords: tuple[str, ...]
    creator: Optional[str]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header, without decoding the pixels."""
    with path.open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def find_drawings(png_root: Path, svg_root: Path) -> list[Drawing]:
    """Every distinct drawing under `png_root`, sorted by id."""
    rels = sorted(
        Path(dirpath, name).relative_to(png_root)
        for dirpath, _, names in os.walk(png_root)
        for name in names
        if name.lower().endswith(".png")
    )
    groups: dict[str, list[Path]] = defaultdict(list)
    digest_of_real: dict[Path, str] = {}  # symlinked copies are hashed once
    for rel in rels:
        real = (png_root / rel).resolve()
        if real not in digest_of_real:
            digest_of_real[real] = _digest(real)
        groups[digest_of_real[real]].append(rel)
    drawings = []
    for copies in groups.values():
        first = copies[0]  # rels are sorted, so the first copy is stable
        svg = svg_root / first.with_suffix(".svg")
        drawings.append(Drawing(
            id=first.with_suffix("").as_posix(),
            png=png_root / first,
            svg=svg if svg.is_file() else None,
            categories=tuple(sorted({c.parent.as_posix() for c in copies if c.parent.parts})),
        ))
    return sorted(drawings, key=lambda d: d.id)


def _text(el: Optional[ET.Element]) -> Optional[str]:
    if el is None or el.text is None:
        return None
    text = " ".join(el.text.split())
    return text or None


def read_svg_metadata(path: Path) -> SvgMetadata:
    """Title, keywords and creator from the SVG's RDF block (cc:Work); empty when there is none.

    The XML is read only up to the end of <metadata>, which precedes the (sometimes huge) paths.
    """
    try:
        for _, el in ET.iterparse(path, events=("end",)):
            if el.tag.endswith("}metadata") or el.tag == "metadata":
                work = el.find(f".//{_CC}Work")
                if work is None:
                    break
                keywords = tuple(
                    t for t in (_text(li) for li in work.findall(f"{_DC}subject//{_RDF}li")) if t
                )
                return SvgMetadata(
                    title=_text(work.find(f"{_DC}title")),
                    keywords=keywords,
                    creator=_text(work.find(f"{_DC}creator/{_CC}Agent/{_DC}title")),
                )
    except ET.ParseError as err:
        raise ValueError(f"{path}: SVG is not valid XML ({err})") from None
    return SvgMetadata(None, (), None)
