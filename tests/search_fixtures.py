"""Helpers shared by the search / server / notebook tests (plain functions, imported by each file).

The tiny random model is loaded once per test process: its image tower and projector are
randomly initialised at every load, so comparisons must use the same instance.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@functools.lru_cache(maxsize=None)
def tiny_model():
    import mmembed

    return mmembed.load("tiny-random")


def roles_model(weight: float = 0.25, query_weight: float = 2.0):
    """The tiny model with a feature read-out (random, non-zero: an unfitted one adds nothing) whose query images get
    another weight than documents, so the two roles give different image vectors."""
    import torch

    from mmembed.config import FeatureReadoutConfig

    model = tiny_model()
    model.config.feature_readout = FeatureReadoutConfig(weight=weight, query_weight=query_weight)
    model.add_feature_readout()
    with torch.no_grad():
        model.feature_readout.map.weight.normal_(generator=torch.Generator().manual_seed(0))
    return model


def write_png(path: Path, seed: int, size: tuple[int, int] = (40, 56)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@dataclass(frozen=True)
class Corpus:
    root: Path  # folder of images (with a subfolder) plus bad files
    csv: Path
    jsonl: Path
    good_images: int
    good_texts: int
    bad: tuple[str, ...]  # names of the inputs that must be reported as skipped


def make_corpus(root: Path, images: int = 6) -> Corpus:
    """Images in root/ and root/sub/, an unreadable PNG, a truncated PNG, an unsupported file,
    a CSV with one bad row and a JSONL with one bad line."""
    for i in range(images):
        write_png(root / ("sub" if i % 2 else "") / f"img{i}.png", i)
    (root / "broken.png").write_bytes(b"this is not a png")
    good = write_png(root / "tmp_full.png", 99).read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "tmp_full.png").unlink()
    (root / "notes.docx").write_bytes(b"PK\x03\x04")
    csv = root.parent / f"{root.name}-texts.csv"
    csv.write_text("text,lang,tags,rating\na red apple,en,\"fruit,red\",5\nein roter Apfel,de,fruit,4\n,fr,,1\n",
                   encoding="utf-8")
    jsonl = root.parent / f"{root.name}-texts.jsonl"
    jsonl.write_text('{"id": "q1", "text": "une pomme rouge", "language": "fr", "tags": ["fruit"]}\n{broken\n',
                     encoding="utf-8")
    return Corpus(root, csv, jsonl, good_images=images, good_texts=3,
                  bad=("broken.png", "truncated.png", "notes.docx", f"{csv.name}:4", f"{jsonl.name}:2"))


@dataclass
class _Version:
    version: str = "0"


class VectorsOnly:
    """Stands in for a model when a test stores ready-made vectors (nothing is embedded)."""

    config = _Version()

    def __init__(self, dim: int, name: str = "vectors-only"):
        self.dim, self.name = dim, name


def clustered(n: int, dim: int, seed: int, centres: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.random.default_rng(1234).standard_normal((centres, dim))
    x = c[rng.integers(0, centres, n)] + 0.7 * rng.standard_normal((n, dim)) / np.sqrt(dim) * np.sqrt(dim) / 4
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
