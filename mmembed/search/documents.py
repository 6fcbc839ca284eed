"""The rows of a collection and what search returns, as typed records.

A `Document` is one stored item: an image file or a piece of text, with its metadata. Ids are
stable (a hash of the absolute path; for a text row without an id of its own, the path plus a hash of
its text, see `text_id`), so indexing the same input again updates rows instead of duplicating them;
`content_hash` tells whether a file changed since.

File names need not be valid UTF-8: ids hash the path's bytes, and what is stored or printed goes
through `safe_str` (undecodable bytes shown as backslash escapes, e.g. caf\\xe9.png).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Union

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
        if not isinstance(self.id, str):
            raise TypeError(f"a document id must be a str, got {type(self.id).__name__} ({self.id!r:.40})")
        object.__setattr__(self, "tags", as_tags(self.tags, f"document {self.id!r}"))
        if not isinstance(self.meta, dict):
            raise TypeError(f"document {self.id!r}: meta must be a dict, got {type(self.meta).__name__}")
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
        meta = json.dumps(self.meta, ensure_ascii=False, sort_keys=True)
        if safe_str(meta) != meta:  # a lone surrogate: escaped by JSON itself, so it reads back the same
            meta = json.dumps(self.meta, ensure_ascii=True, sort_keys=True)
        return {
            "id": safe_str(self.id), "kind": self.kind, "text": safe_str(self.text), "image": safe_opt(self.image),
            "source": safe_str(self.source), "folder": safe_str(self.folder), "language": safe_opt(self.language),
            "tags": [safe_str(t) for t in self.tags], "meta": meta, "content_hash": self.content_hash,
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

    def __post_init__(self) -> None:  # printable and storable whatever bytes a file name holds
        object.__setattr__(self, "path", safe_str(os.fspath(self.path)))
        object.__setattr__(self, "reason", safe_str(str(self.reason)))


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
    return sha1_hex(payload.encode("utf-8", "surrogatepass"))


def path_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a path as the file system has them (a non-UTF-8 name included)."""
    try:
        return os.fsencode(path)
    except UnicodeEncodeError:  # a surrogate that is no escaped byte: keep it distinct anyway
        return os.fspath(path).encode("utf-8", "surrogatepass")


def safe_str(text: str) -> str:
    """`text` as valid UTF-8: bytes of a non-UTF-8 file name (surrogates) become backslash escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return path_bytes(text).decode("utf-8", "backslashreplace")


def safe_opt(text: Optional[str]) -> Optional[str]:
    return None if text is None else safe_str(text)


def image_id(path: str | os.PathLike) -> str:
    """Stable id of an image file: its absolute path (re-indexing the same file updates the row)."""
    return "img:" + sha1_hex(path_bytes(Path(path).resolve().as_posix()))[:24]


def text_id(source: str | os.PathLike, row: int | str) -> str:
    """Stable id of row `row` of a text / CSV / JSONL file at absolute path `source`: discovery passes a key
    made of a hash of the row's text and its occurrence in the file (see discover.py), so lines added or
    removed elsewhere in the file do not move it."""
    return "txt:" + sha1_hex(path_bytes(os.fspath(source)) + f"#{row}".encode("utf-8", "surrogatepass"))[:24]


def one_or_many(value: Union[str, os.PathLike, Iterable[Any], None], what: str) -> list[Any]:
    """A list of items from a list (or any iterable) of them; a bare str or path is ONE item, not characters."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (bytes, dict)):
        raise TypeError(f"{what} must be a str or a list of them, got {type(value).__name__}")
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{what} must be a str or a list of them, got {type(value).__name__} ({value!r:.40})") from None


def as_tags(value: Union[str, Iterable[str], None], where: str) -> tuple[str, ...]:
    """Tags as a tuple of distinct strings, first occurrence first ("holiday" is one tag, not seven)."""
    tags = one_or_many(value, f"{where}: tags")
    bad = [t for t in tags if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"{where}: tags must be non-empty strings, got {bad[0]!r}")
    return tuple(dict.fromkeys(tags))


def as_ids(ids: Union[str, Iterable[str]]) -> list[str]:
    """Ids as a list of strings ("row-7" is one id, not five)."""
    ids = one_or_many(ids, "ids")
    bad = next((i for i in ids if not isinstance(i, str)), None)
    if bad is not None:
        raise TypeError(f"ids must be strings, got {type(bad).__name__} ({bad!r:.40})")
    return ids


def as_documents(docs: Union[Document, Iterable[Document]]) -> list[Document]:
    """Documents as a list (one Document is one item); anything else is refused by its type."""
    docs = [docs] if isinstance(docs, Document) else one_or_many(docs, "documents")
    bad = next((d for d in docs if not isinstance(d, Document)), None)
    if bad is not None:
        raise TypeError(f"expected Document objects, got {type(bad).__name__} ({bad!r:.60})")
    return docs


def distinct_positions(docs: list[Document]) -> list[int]:
    """Positions of the documents to write: one per id. The same document twice is written once; two different
    documents under one id are refused (one of them would be lost)."""
    first: dict[str, int] = {}
    for i, d in enumerate(docs):
        j = first.setdefault(d.id, i)
        if j != i and docs[j] != d:
            raise ValueError(f"documents {j} and {i} share the id {safe_str(d.id)!r} but differ "
                             f"({safe_str(docs[j].text)[:40]!r} vs {safe_str(d.text)[:40]!r}); ids must be unique in one call")
    return sorted(first.values())


def text_rows(texts: Union[str, Iterable[str]], *, ids: Union[str, Iterable[str], None] = None,
              language: Optional[str] = None, tags: Union[str, Iterable[str]] = (), meta: Optional[dict[str, Any]] = None,
              images: Union[str, os.PathLike, Iterable[Optional[str]], None] = None) -> list[Document]:
    """Documents for `Collection.add_texts`: ids default to a hash of the language and the text."""
    texts = one_or_many(texts, "texts")
    ids = as_ids(ids) if ids is not None else [
        "txt:" + sha1_hex(f"{language}\n{t}".encode("utf-8", "surrogatepass"))[:24] for t in texts]
    pics = one_or_many(images, "images") if images is not None else [None] * len(texts)
    for what, values in (("ids", ids), ("images", pics)):
        if len(values) != len(texts):
            raise ValueError(f"{len(values)} {what} for {len(texts)} texts")
    tags = as_tags(tags, "add_texts")
    return [Document(id=i, kind="text", text=t, image=None if p is None else os.fspath(p), language=language,
                     tags=tags, meta=dict(meta or {})) for i, t, p in zip(ids, texts, pics)]


def image_rows(paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], *,
               captions: Union[str, Iterable[str], None] = None, tags: Union[str, Iterable[str]] = (),
               meta: Optional[dict[str, Any]] = None) -> list[Document]:
    """Documents for `Collection.add_images`: ids from the files' absolute paths, captions from their names."""
    paths = [Path(p) for p in one_or_many(paths, "paths")]
    caps = one_or_many(captions, "captions") if captions is not None else [p.stem for p in paths]
    if len(caps) != len(paths):
        raise ValueError(f"{len(caps)} captions for {len(paths)} images")
    tags = as_tags(tags, "add_images")
    return [Document(id=image_id(p), kind="image", text=c, image=str(p.resolve()), source=str(p.resolve()),
                     tags=tags, meta=dict(meta or {})) for p, c in zip(paths, caps)]
