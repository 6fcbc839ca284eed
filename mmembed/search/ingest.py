"""Indexing files into a collection: discover -> skip unchanged -> embed (local or Ray) -> commit -> tidy.

Interruptible and re-runnable: ids are stable, rows whose content is already stored are not embedded
again (a row whose metadata alone changed, e.g. a new --tag, keeps its stored vector), and embedded
rows are committed in chunks of at most `chunk_size` items (each Lance commit is atomic), so Ctrl-C
loses at most `chunk_size` embedded rows and a re-run continues where it stopped without duplicating
anything. Unreadable files are skipped and listed in the report.

After a complete run the collection mirrors what it indexed: stored rows of a text file that the file
no longer yields, and rows of files under an indexed folder that are gone, are removed (rows of other
folders and files stay). Inputs that give nothing indexable raise NothingToIndexError and create nothing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterator, Literal, Optional, Sequence, Union

import numpy as np

from .discover import Discovery, TextOptions, discover
from .documents import Document, SkippedFile, file_hash, one_or_many
from .info import NothingToIndexError

if TYPE_CHECKING:
    from .collection import Collection

Engine = Literal["local", "ray"]
SMALL_IMAGE_PIXELS = 1024 * 1024  # decoded images up to this size are kept for encoding (no second decode)


@dataclass
class IngestReport:
    inserted: int = 0
    updated: int = 0  # re-embedded (content changed) or relabelled (metadata changed)
    unchanged: int = 0  # already stored with the same content and metadata: not embedded again
    relabeled: int = 0  # of `updated`: only metadata changed (tags, folder, ...): the stored vector kept
    removed: int = 0  # stored rows whose file is gone from an indexed folder, or that a re-read file no longer has
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    indexed_ann: bool = False  # whether the ANN index was built or refreshed

    @property
    def embedded(self) -> int:
        return self.inserted + self.updated - self.relabeled


@dataclass
class EmbeddedBatch:
    documents: list[Document]  # in the order given to embed_group, less the skipped ones
    vectors: np.ndarray  # (n, dim) float32
    skipped: list[SkippedFile] = field(default_factory=list)
    appearance: Optional[list[Optional[np.ndarray]]] = None  # per document its (C,) appearance (images) or None


@dataclass
class Plan:
    embed: list[Document] = field(default_factory=list)  # new, or content changed
    relabel: list[Document] = field(default_factory=list)  # same content, other metadata: stored vector reused
    unchanged: int = 0
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


def _same_content(new: Document, old: Document) -> bool:
    """Whether `old`'s stored vector is `new`'s too (the same image bytes, or the same text)."""
    if new.kind != old.kind:
        return False
    return new.content_hash == old.content_hash if new.kind == "image" else new.text == old.text


def plan(collection: "Collection", docs: Sequence[Document], chunk: int = 2_000, progress: bool = False,
         found: Optional[Discovery] = None) -> Plan:
    """Sort documents into: to embed, to relabel (metadata only), unchanged, skipped. With `found` (the run's
    discovery), a text row whose id is stored for a source this run does not re-read is skipped, not
    overwritten; so is an image (a symlink, or a file found by another path) whose id is stored for another
    source that still exists and that this run does not cover: that row stays with its own source (taking it
    over would let it go when the link goes)."""
    from tqdm.auto import tqdm

    out = Plan()
    where = dict(zip((d.id for d in found.documents), found.locations)) if found is not None else {}
    show = progress and len(docs) > chunk  # hashing 10,000 files takes a moment: show it
    for s in tqdm(range(0, len(docs), chunk), desc="check for changes", unit="chunk", disable=not show):
        hashed, bad = hash_documents(docs[s : s + chunk])
        out.skipped += bad
        stored = {d.id: d for d in collection.get([d.id for d in hashed])}
        for d in hashed:
            old = stored.get(d.id)
            if old is None:
                out.embed.append(d)
                continue
            row = d.to_row()  # once per document: it serializes the metadata
            moved = found is not None and old.source != row["source"] and not found.covers(old.source)
            if moved and d.kind == "text":
                out.skipped.append(SkippedFile(where.get(d.id, d.source), (
                    f"id {d.id!r} is already stored for {old.source or 'a row added without a file'}, "
                    "which this run does not index; give the row another id, or delete the stored one")))
            elif moved and d.kind == "image" and old.source and os.path.lexists(old.source):
                out.skipped.append(SkippedFile(where.get(d.id, d.source), (
                    f"same file as {old.source}, already indexed from there")))
            elif not _same_content(d, old):
                out.embed.append(d)
            elif row == old.to_row():
                out.unchanged += 1
            else:
                out.relabel.append(d)
    return out


def _decoded(path: str):
    """A decoded image (kept when small) or its path (decoded again by the model: bounded memory)."""
    from ..images import open_image

    img = open_image(path)
    return img if img.width * img.height <= SMALL_IMAGE_PIXELS else path


def embed_group(model, docs: Sequence[Document], dim: int, batch_size: int, role: str = "document",
                appearance: bool = False) -> EmbeddedBatch:
    """Embed a group of documents with `model`, keeping their order; unreadable images are skipped, not raised.
    `role` is what the images are (config.ImageRole): documents for an index, queries for labelling them.
    With `appearance`, image rows also get their appearance (mmembed/appearance.py; a collection keeps it)."""
    from ..images import ImageInputError

    def skip(d: Document, err: Exception) -> None:
        skipped.append(SkippedFile(d.source or str(d.image), str(err).split(": ", 1)[-1]))

    decoded: dict[int, object] = {}  # row -> its decoded image (or path)
    skipped: list[SkippedFile] = []
    for i, d in enumerate(docs):
        if d.kind == "image":
            try:
                decoded[i] = _decoded(d.image)
            except ImageInputError as err:
                skip(d, err)
    image_rows = list(decoded)
    text_rows = [i for i, d in enumerate(docs) if d.kind == "text"]
    vectors = np.zeros((len(docs), dim), dtype=np.float32)
    by_row: dict[int, np.ndarray] = {}  # row -> its appearance (with `appearance`), from the same tower pass

    def embed(rows: list[int]) -> None:
        images = [decoded[i] for i in rows]
        if appearance:
            vecs, looks = model.encode_image_and_appearance(images, batch_size=batch_size, dim=dim, role=role)
            by_row.update(zip(rows, looks))
        else:
            vecs = model.encode_image(images, batch_size=batch_size, dim=dim, role=role)
        vectors[rows] = vecs

    if text_rows:
        vectors[text_rows] = model.encode_text([docs[i].text for i in text_rows], batch_size=batch_size, dim=dim)
    if image_rows:
        try:
            embed(image_rows)
        except ImageInputError:  # a file changed between the check and the encode: go one by one
            ok = []
            for i in image_rows:
                try:
                    embed([i])
                    ok.append(i)
                except ImageInputError as err:
                    skip(docs[i], err)
            image_rows = ok
    keep = sorted(text_rows + image_rows)
    looks = [by_row.get(i) for i in keep] if appearance else None
    return EmbeddedBatch([docs[i] for i in keep], vectors[keep], skipped, looks)


def local_engine(collection: "Collection", docs: Sequence[Document], group: int) -> Iterator[EmbeddedBatch]:
    model = collection.model
    for s in range(0, len(docs), group):
        yield embed_group(model, docs[s : s + group], collection.dim, collection.batch_size,
                          appearance=collection.appearance_dim is not None)


def ingest(
    collection: "Collection",
    paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
    *,
    options: TextOptions = TextOptions(),
    engine: Engine = "local",
    chunk_size: int = 256,
    progress: bool = True,
    build_index: bool = True,
    ray_options=None,
) -> IngestReport:
    """Index folders of images (recursive) and text / CSV / TSV / JSONL files into `collection` (one path or a
    list). Locally at most `chunk_size` embedded rows are uncommitted at any time (what an interruption can
    lose); the Ray engine commits whole Ray batches, so there it is max(chunk_size, ray_options.batch_size)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    paths = one_or_many(paths, "paths")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int (rows per commit), got {chunk_size!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    found = discover(paths, options)
    if not found.documents:  # before the table exists: a typo'd path must not leave an empty collection behind
        raise NothingToIndexError(_nothing_found(paths, found.skipped))
    collection.check_writable()  # the model and dim a new table would record: refused before any work
    report = IngestReport(skipped=list(found.skipped))
    todo = plan(collection, found.documents, progress=progress, found=found)
    report.unchanged, report.skipped = todo.unchanged, report.skipped + todo.skipped
    _relabel(collection, todo.relabel, report)
    if engine == "local":
        group = min(4 * collection.batch_size, chunk_size)
        batches = local_engine(collection, todo.embed, group=group)
    else:
        from .ray_engine import RayOptions, ray_engine

        ray_options = ray_options or RayOptions()
        group = ray_options.batch_size
        batches = ray_engine(collection, todo.embed, ray_options)
    bar = tqdm(total=len(todo.embed), unit="item", desc=f"index -> {collection.path}", disable=not progress)
    buffer: list[EmbeddedBatch] = []
    try:
        for batch in batches:
            buffer.append(batch)
            report.skipped += batch.skipped
            bar.update(len(batch.documents) + len(batch.skipped))
            if sum(len(b.documents) for b in buffer) + group > chunk_size:  # the next group would pass it
                _commit(collection, buffer, report)
    finally:  # Ctrl-C included: what was embedded is committed, so a re-run does not redo it
        _commit(collection, buffer, report)
        bar.close()
    if report.inserted + report.updated + report.unchanged == 0:  # every input was unusable: refuse, as for none
        raise NothingToIndexError(_nothing_found(paths, report.skipped))
    report.removed = _remove_stale(collection, found)
    if build_index:
        report.indexed_ann = collection.ensure_index()
    report.seconds = time.perf_counter() - start
    return report


def _relabel(collection: "Collection", docs: Sequence[Document], report: IngestReport, chunk: int = 2_000) -> None:
    """Rewrite rows whose metadata alone changed, with their stored vectors (nothing is embedded)."""
    for s in range(0, len(docs), chunk):
        part = docs[s : s + chunk]
        ids = [d.id for d in part]
        result = collection.upsert(part, collection.vectors(ids), collection.appearances(ids))
        report.updated += result.updated
        report.inserted += result.inserted
        report.relabeled += result.updated


def _remove_stale(collection: "Collection", found: Discovery) -> int:
    """Delete stored rows that the covered folders and text files no longer yield (their file is gone, or a
    re-read text file no longer has that row). Rows of anything this run did not cover are kept."""
    ids = {d.id for d in found.documents}
    stored = collection.rows_from(found.folders, sorted(found.files_read))
    return collection.delete([r["id"] for r in stored if r["id"] not in ids and found.covers(r["source"])])


def _nothing_found(paths: Sequence[str | os.PathLike], skipped: Sequence[SkippedFile], show: int = 5) -> str:
    given = ", ".join(repr(os.fspath(p)) for p in paths) or "(no paths given)"
    why = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:show])
    more = f" ... and {len(skipped) - show} more" if len(skipped) > show else ""
    return (f"nothing to index in {given}: no usable image file and no text row (.txt / .csv / .tsv / .jsonl) found"
            + (f" (skipped: {why}{more})" if why else ""))


def _commit(collection: "Collection", buffer: list[EmbeddedBatch], report: IngestReport) -> None:
    docs = [d for b in buffer for d in b.documents]
    if docs:
        looks = [a for b in buffer for a in (b.appearance or [None] * len(b.documents))]
        result = collection.upsert(docs, np.concatenate([b.vectors for b in buffer]), looks)
        report.inserted += result.inserted
        report.updated += result.updated
    buffer.clear()
