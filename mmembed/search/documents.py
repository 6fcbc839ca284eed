"""The rows of a collection and what search returns, as typed records.

A `Document` is one stored item: an image file or a piece of text, with its metadata. Ids are
stable (a hash of the absolute path, plus the row for text files), so indexing the same input
again updates rows instead of duplicating them; `content_hash` tells whether a file changed since.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional

Kind = Literal["image", "text"]
KINDS = ("image", "text")


@dataclass(frozen=True)
class Document:
    id: str
    kind: Kind
    text: str = ""  # text rows: the embedded text; image rows: a caption/title shown with hits
    image: Optional[str] = None  # image rows: the embedded file; text rows: an illustration, if any
    source: str = ""  # the file this row came from (the image itself, or the CSV / JSONL / txt)
    folder: str = ""  # folder of the source relative to the indexed root ("" at the root)
    language: Optional[str] = None
    tags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)  # any other column of a CSV / JSONL row
    content_hash: str = ""  # sha1 of the image bytes or of the text + metadata

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"document {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not self.id:
            raise ValueError("a document needs a non-empty id")
        if self.kind == "image" and not self.image:
            raise ValueError(f"document {self.id!r}: an image row needs `image` (a file path)")
        if self.kind == "text" and not self.text:
            raise ValueError(f"document {self.id!r}: a text row needs non-empty `text`")

    def with_hash(self) -> "Document":
        return replace(self, content_hash=self.content_hash or text_hash(self))

    def to_row(self) -> dict[str, Any]:
        """The Arrow/Lance row (tags as a list, meta as a JSON string)."""
        return {
            "id": self.id, "kind": self.kind, "text": self.text, "image": self.image, "source": self.source,
            "folder": self.folder, "language": self.language, "tags": list(self.tags),
            "meta": json.dumps(self.meta, ensure_ascii=False, sort_keys=True), "content_hash": self.content_hash,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Document":
        return cls(
            id=row["id"], kind=row["kind"], text=row.get("text") or "", image=row.get("image"),
            source=row.get("source") or "", folder=row.get("folder") or "", language=row.get("language"),
            tags=tuple(row.get("tags") or ()), meta=json.loads(row.get("meta") or "{}"),
            content_hash=row.get("content_hash") or "",
        )


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float  # cosine similarity to the query (vectors are L2-normalized)
    rank: int


@dataclass(frozen=True)
class SkippedFile:
    """An input that was not indexed, and why (unreadable image, bad CSV row, unknown type...)."""

    path: str
    reason: str


def sha1_hex(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def file_hash(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def text_hash(doc: Document) -> str:
    payload = json.dumps([doc.text, doc.image, doc.language, list(doc.tags), doc.meta], ensure_ascii=False, sort_keys=True)
    return sha1_hex(payload.encode("utf-8"))


def image_id(path: str | os.PathLike) -> str:
    """Stable id of an image file: its absolute path (re-indexing the same file updates the row)."""
    return "img:" + sha1_hex(Path(path).resolve().as_posix().encode("utf-8"))[:24]


def text_id(source: str | os.PathLike, row: int | str) -> str:
    """Stable id of row `row` (line number or the row's own id) of a text / CSV / JSONL file."""
    key = f"{Path(source).resolve().as_posix()}#{row}"
    return "txt:" + sha1_hex(key.encode("utf-8"))[:24]
