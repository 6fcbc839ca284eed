"""Colour swatches: 8 solid-colour pictures named in English, German and French, as a train.jsonl of image-text
pairs (the feature read-out and neighbour-caption tests fit and build on it)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from mmembed.data.manifest import PairRecord, write_manifest

SWATCHES = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (240, 220, 0),
            "black": (0, 0, 0), "white": (255, 255, 255), "purple": (128, 0, 128), "orange": (255, 140, 0)}
GERMAN = {"red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb", "black": "schwarz", "white": "weiß",
          "purple": "lila", "orange": "orange"}


def write_swatches(root: Path) -> Path:
    """root/images/NAME.png and root/train.jsonl (3 captions per swatch); returns root."""
    (root / "images").mkdir(parents=True)
    recs = []
    for name, rgb in SWATCHES.items():
        Image.new("RGB", (24, 24), rgb).save(root / "images" / f"{name}.png")
        for lang, cap in (("en", f"a {name} square"), ("de", f"ein {GERMAN[name]}es Quadrat"), ("fr", f"{name} (fr)")):
            recs.append(PairRecord(concept=f"color:{name}", caption=cap, lang=lang, image=f"images/{name}.png", kind="name"))
    write_manifest(root / "train.jsonl", recs)
    return root


def swatch_images(root: Path) -> list[Path]:
    return [root / "images" / f"{name}.png" for name in SWATCHES]
