"""JSONL pair manifests: the one on-disk format that data builders write and training/eval read.

A dataset folder holds `train.jsonl`, `dev.jsonl`, `test.jsonl` (any may be absent), images under
it, and a `card.json` with counts. One line = one `PairRecord`: an anchor (an image path relative
to the manifest's folder, a text, or a row of a feature table: a precomputed pooled image-tower
feature vector, see `FeatureRef`) paired with a caption in one language. Splits are by concept:
every record of a concept lives in the same split.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from ..paths import write_atomically
from .jsonl import read_jsonl

SPLITS = ("train", "dev", "test")


class ManifestError(ValueError):
    """A manifest line is malformed; the message names the file and the line number."""


@dataclass(frozen=True)
class FeatureRef:
    """An image-side anchor given as features, not pixels: row `row` of the 2-D tensor `tensor`
    (n, c) in the safetensors file `file` (relative to the manifest's folder). c = the image
    tower's channels; training broadcasts the vector to the (c, s, s) map the projector reads.
    Written in JSON as {"file": ..., "tensor": ..., "row": ...}: no path suffix or separator to parse."""

    file: str
    tensor: str
    row: int

    def __post_init__(self) -> None:
        if not isinstance(self.file, str) or not self.file.strip():
            raise ValueError(f"features.file must be a non-empty path string, got {self.file!r}")
        if not isinstance(self.tensor, str) or not self.tensor:
            raise ValueError(f"features.tensor must be a non-empty tensor name, got {self.tensor!r}")
        if isinstance(self.row, bool) or not isinstance(self.row, int) or self.row < 0:
            raise ValueError(f"features.row must be an integer >= 0, got {self.row!r}")

    @classmethod
    def from_json(cls, data: object) -> "FeatureRef":
        if not isinstance(data, dict) or set(data) != {"file", "tensor", "row"}:
            raise ValueError(f"features must be an object with exactly the keys file, tensor, row; got {data!r}")
        return cls(**data)


@dataclass(frozen=True)
class PairRecord:
    concept: str  # concept id; all records of a concept share a split
    caption: str  # text in `lang` describing the anchor
    lang: str  # language of the caption (BCP-47-like code: en, de, zh, pt_BR, ...)
    image: Optional[str] = None  # anchor image, path relative to the manifest's folder
    text: Optional[str] = None  # anchor text (text-text pairs, e.g. the English sentence)
    text_lang: Optional[str] = None  # language of `text`
    features: Optional[FeatureRef] = None  # anchor given as a pooled-feature vector (no pixels)
    negative: Optional[str] = None  # optional hard-negative caption
    source: str = ""  # where it came from, e.g. "unicode-cldr-core 46" (see the data card)
    license: str = ""
    kind: str = "caption"  # name | keyword | title | category | sentence | ...
    split: str = "train"

    def __post_init__(self) -> None:
        for name in _REQUIRED_TEXT:  # non-empty strings: a number or list here breaks every later sort and join
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {_show(value)}")
        for name in (*_TEXT, *_OPTIONAL_TEXT):
            value = getattr(self, name)
            if not isinstance(value, str) and (value is not None or name in _TEXT):
                raise ValueError(f"{name} must be a string, got {_show(value)}")
        if self.image is not None and not self.image.strip():
            raise ValueError("image must be a non-empty path")
        anchors = sum(a is not None for a in (self.image, self.text, self.features))
        if anchors != 1:
            raise ValueError(f"a PairRecord needs exactly one anchor (image, text or features), got {anchors}")
        if self.features is not None and not isinstance(self.features, FeatureRef):
            raise ValueError(f"features must be a FeatureRef, got {type(self.features).__name__}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")

    def to_json(self) -> str:
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return json.dumps(data, ensure_ascii=False)


_REQUIRED_TEXT = ("concept", "caption", "lang")
_TEXT = ("source", "license", "kind", "split")  # strings, may be empty
_OPTIONAL_TEXT = ("image", "text", "text_lang", "negative")  # a string or absent
_FIELDS = {f.name for f in dataclasses.fields(PairRecord)}
_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _show(value: object) -> str:
    """A wrong value as a message shows it: its JSON type and a short repr."""
    kind = {bool: "boolean", int: "number", float: "number", list: "list", dict: "object", type(None): "null",
            str: "string"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:39] + '…'}"


def read_manifest(path: str | os.PathLike) -> list[PairRecord]:
    """Read every record; a malformed line raises ManifestError naming file and line."""
    return list(iter_manifest(path))


def iter_manifest(path: str | os.PathLike) -> Iterator[PairRecord]:
    for _, record in iter_manifest_lines(path):
        yield record


def _check_text_file(path: Path, head: bytes) -> None:
    """Refuse UTF-16/32 and binary files (an image passed as a manifest) before reading lines."""
    if head.startswith(_UTF16_32_BOMS):
        raise ManifestError(f"{path}: not UTF-8 (it starts with a UTF-16/UTF-32 byte-order mark); save it as UTF-8")
    if b"\x00" in head:
        raise ManifestError(f"{path} is not a JSONL manifest (it holds binary data: NUL bytes; "
                            "an image or UTF-16 text?); give a UTF-8 file with one JSON object per line")


def iter_manifest_lines(path: str | os.PathLike) -> Iterator[tuple[int, PairRecord]]:
    """(line number, record) for every non-blank line. UTF-8, a leading byte-order mark is dropped;
    every problem raises ManifestError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    with path.open("rb") as fh:
        _check_text_file(path, fh.read(4096))
    for line in read_jsonl(path):
        lineno, data = line.lineno, line.value
        if line.problem:
            raise ManifestError(f"{path}:{lineno}: {line.problem}")
        if not isinstance(data, dict):
            raise ManifestError(f"{path}:{lineno}: expected a JSON object, got {type(data).__name__}")
        unknown = set(data) - _FIELDS
        if unknown:
            raise ManifestError(f"{path}:{lineno}: unknown fields {sorted(unknown)}")
        try:
            if "features" in data:
                data["features"] = FeatureRef.from_json(data["features"])
            record = PairRecord(**data)
        except (TypeError, ValueError) as err:
            raise ManifestError(f"{path}:{lineno}: {err}") from None
        yield lineno, record


def write_manifest(path: str | os.PathLike, records: Iterable[PairRecord]) -> int:
    """Write records atomically (temp file + rename): a crash never leaves a half manifest."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with open(tmp, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(record.to_json() + "\n")
                count += 1

    write_atomically(path, write)
    return count


def resolve_image(manifest_path: str | os.PathLike, record: PairRecord) -> Path:
    """Absolute path of a record's image (relative paths are relative to the manifest's folder)."""
    assert record.image is not None
    p = Path(record.image)
    return p if p.is_absolute() else Path(manifest_path).parent / p


def resolve_features(manifest_path: str | os.PathLike, record: PairRecord) -> FeatureRef:
    """A record's FeatureRef with its file made absolute (relative paths: to the manifest's folder)."""
    assert record.features is not None
    p = Path(record.features.file)
    return dataclasses.replace(record.features, file=str(p if p.is_absolute() else Path(manifest_path).parent / p))
