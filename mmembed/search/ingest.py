"""Indexing files into a collection: discover -> skip unchanged -> embed (local or Ray) -> commit.

Interruptible and re-runnable: ids are stable, rows whose content hash is already stored are not
embedded again, and embedded rows are committed every `chunk_size` items (each Lance commit is
atomic), so Ctrl-C loses at most one uncommitted chunk and a re-run continues where it stopped
without duplicating anything. Unreadable files are skipped and listed in the report.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterator, Literal, Optional, Sequence

import numpy as np

from .discover import TextOptions, discover
from .documents import Document, SkippedFile, file_hash
from .info import NothingToIndexError

if TYPE_CHECKING:
    from .collection import Collection

Engine = Literal["local", "ray"]
SMALL_IMAGE_PIXELS = 1024 * 1024  # decoded images up to this size are kept for encoding (no second decode)


@dataclass
class IngestReport:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0  # already stored with the same content: not embedded again
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    indexed_ann: bool = False  # whether the ANN index was built or refreshed

    @property
    def embedded(self) -> int:
        return self.inserted + self.updated


@dataclass
class EmbeddedBatch:
    documents: list[Document]
    vectors: np.ndarray  # (n, dim) float32
    skipped: list[SkippedFile] = field(default_factory=list)


def hash_documents(docs: Sequence[Document]) -> tuple[list[Document], list[SkippedFile]]:
    """Fill content_hash: the bytes of image files, the text and metadata of text rows."""
    out, skipped = [], []
    for d in docs:
        if d.kind == "image":
            try:
                out.append(replace(d, content_hash=file_hash(d.image)))
            except OSError as err:
                skipped.append(SkippedFile(d.source or str(d.image), f"unreadable: {err.strerror or err}"))
        else:
            out.append(d.with_hash())
    return out, skipped


def plan(collection: "Collection", docs: Sequence[Document], chunk: int = 2_000, progress: bool = False):
    """(documents to embed, number unchanged, skipped): drop rows stored with the same hash."""
    from tqdm.auto import tqdm

    todo: list[Document] = []
    skipped: list[SkippedFile] = []
    unchanged = 0
    show = progress and len(docs) > chunk  # hashing 10,000 files takes a moment: show it
    for s in tqdm(range(0, len(docs), chunk), desc="check for changes", unit="chunk", disable=not show):
        hashed, bad = hash_documents(docs[s : s + chunk])
        skipped += bad
        stored = collection.existing_hashes([d.id for d in hashed])
        fresh = [d for d in hashed if stored.get(d.id) != d.content_hash]
        unchanged += len(hashed) - len(fresh)
        todo += fresh
    return todo, unchanged, skipped


def _decoded(path: str):
    """A decoded image (kept when small) or its path (decoded again by the model: bounded memory)."""
    from ..images import open_image

    img = open_image(path)
    return img if img.width * img.height <= SMALL_IMAGE_PIXELS else path


def embed_group(model, docs: Sequence[Document], dim: int, batch_size: int) -> EmbeddedBatch:
    """Embed a group of documents with `model`; unreadable images are skipped, not raised."""
    from ..images import ImageInputError

    kept: list[Document] = []
    images: list = []
    skipped: list[SkippedFile] = []
    for d in docs:
        if d.kind != "image":
            continue
        try:
            images.append(_decoded(d.image))
            kept.append(d)
        except ImageInputError as err:
            skipped.append(SkippedFile(d.source or str(d.image), str(err).split(": ", 1)[-1]))
    texts = [d for d in docs if d.kind == "text"]
    vectors = np.zeros((len(texts) + len(kept), dim), dtype=np.float32)
    if texts:
        vectors[: len(texts)] = model.encode_text([d.text for d in texts], batch_size=batch_size, dim=dim)
    if kept:
        try:
            vectors[len(texts) :] = model.encode_image(images, batch_size=batch_size, dim=dim)
        except ImageInputError:  # a file changed between the check and the encode: go one by one
            return _one_by_one(model, texts, vectors[: len(texts)], kept, images, dim, skipped)
    return EmbeddedBatch(texts + kept, vectors, skipped)


def _one_by_one(model, texts, text_vectors, kept, images, dim, skipped) -> EmbeddedBatch:
    from ..images import ImageInputError

    docs, rows = list(texts), [text_vectors]
    for d, img in zip(kept, images):
        try:
            rows.append(model.encode_image([img], dim=dim))
            docs.append(d)
        except ImageInputError as err:
            skipped.append(SkippedFile(d.source or str(d.image), str(err).split(": ", 1)[-1]))
    return EmbeddedBatch(docs, np.concatenate(rows).astype(np.float32), skipped)


def local_engine(collection: "Collection", docs: Sequence[Document], group: int) -> Iterator[EmbeddedBatch]:
    model = collection.model
    for s in range(0, len(docs), group):
        yield embed_group(model, docs[s : s + group], collection.dim, collection.batch_size)


def ingest(
    collection: "Collection",
    paths: Sequence[str | os.PathLike],
    *,
    options: TextOptions = TextOptions(),
    engine: Engine = "local",
    chunk_size: int = 256,
    progress: bool = True,
    build_index: bool = True,
    ray_options=None,
) -> IngestReport:
    """Index folders of images (recursive) and text / CSV / TSV / JSONL files into `collection`."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    found = discover(paths, options)
    if not found.documents:  # before the table exists: a typo'd path must not leave an empty collection behind
        raise NothingToIndexError(_nothing_found(paths, found.skipped))
    report = IngestReport(skipped=list(found.skipped))
    todo, report.unchanged, bad = plan(collection, found.documents, progress=progress)
    report.skipped += bad
    collection._ensure_table()  # records the model before any worker starts
    if engine == "local":
        batches = local_engine(collection, todo, group=4 * collection.batch_size)
    elif engine == "ray":
        from .ray_engine import RayOptions, ray_engine

        batches = ray_engine(collection, todo, ray_options or RayOptions())
    else:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    bar = tqdm(total=len(todo), unit="item", desc=f"index -> {collection.path}", disable=not progress)
    buffer: list[EmbeddedBatch] = []
    try:
        for batch in batches:
            buffer.append(batch)
            report.skipped += batch.skipped
            bar.update(len(batch.documents) + len(batch.skipped))
            if sum(len(b.documents) for b in buffer) >= chunk_size:
                _commit(collection, buffer, report)
    finally:  # Ctrl-C included: what was embedded is committed, so a re-run does not redo it
        _commit(collection, buffer, report)
        bar.close()
    if build_index:
        report.indexed_ann = collection.ensure_index()
    report.seconds = time.perf_counter() - start
    return report


def _nothing_found(paths: Sequence[str | os.PathLike], skipped: Sequence[SkippedFile], show: int = 5) -> str:
    given = ", ".join(repr(os.fspath(p)) for p in paths) or "(no paths given)"
    why = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:show])
    more = f" ... and {len(skipped) - show} more" if len(skipped) > show else ""
    return (f"nothing to index in {given}: no image files and no text rows (.txt / .csv / .tsv / .jsonl) found"
            + (f" (skipped: {why}{more})" if why else ""))


def _commit(collection: "Collection", buffer: list[EmbeddedBatch], report: IngestReport) -> None:
    docs = [d for b in buffer for d in b.documents]
    if docs:
        result = collection.upsert(docs, np.concatenate([b.vectors for b in buffer]))
        report.inserted += result.inserted
        report.updated += result.updated
    buffer.clear()
