"""What one write to a Collection stores, and how it goes into the table.

`embed_documents` embeds documents with a model (text rows their text, image rows their image file; image looks from
the same tower pass). `prepare_rows` turns documents, with or without ready-made vectors and looks, into the `Rows`
one write stores: one row per id (the last document with an id wins), every vector checked before anything is
written. `merge_rows` writes them by id. Collection (collection.py) owns the table and calls these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .documents import Document, distinct_positions
from .info import CollectionInfo
from .looks import Appearances, check_appearance_rows


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    updated: int


@dataclass(frozen=True)
class Rows:
    """The documents one write stores, one per id, with their vectors and (image rows) looks."""

    docs: list[Document]
    vectors: np.ndarray  # (n, dim) float32, all finite
    appearance: Appearances  # per document its (C,) look or None; None: no looks at all


def embed_documents(model: Any, docs: Sequence[Document], *, dim: int, batch_size: int, progress: Optional[bool],
                    looks: bool) -> tuple[np.ndarray, list[Optional[np.ndarray]]]:
    """(n, dim) vectors and per document its (C,) look (None for texts, and for every row unless `looks`)."""
    out = np.zeros((len(docs), dim), dtype=np.float32)
    found: list[Optional[np.ndarray]] = [None] * len(docs)
    texts = [i for i, d in enumerate(docs) if d.kind == "text"]
    images = [i for i, d in enumerate(docs) if d.kind == "image"]
    kw = dict(batch_size=batch_size, dim=dim, progress=progress)
    if texts:
        out[texts] = model.encode_text([docs[i].text for i in texts], **kw)
    if images and looks:
        out[images], rows = model.encode_image_and_appearance([docs[i].image for i in images], **kw)
        for i, row in zip(images, rows):
            found[i] = row
    elif images:
        out[images] = model.encode_image([docs[i].image for i in images], **kw)
    return out, found


def prepare_rows(docs: Sequence[Document], vectors: Optional[np.ndarray], appearance: Appearances, *,
                 embed: Callable[[list[Document]], tuple[np.ndarray, Appearances]], info: CollectionInfo,
                 appearance_dim: Optional[int], path: str) -> Rows:
    """The rows to write for non-empty `docs`. Without vectors, `embed` computes vectors and looks of the kept
    documents; ready-made vectors (and per document looks, or None) are checked against `info` and the documents."""
    keep = distinct_positions(docs)
    if vectors is None:
        if appearance is not None:
            raise ValueError("appearance rows were given without vectors; give both, or neither (then both are computed)")
        vectors, appearance = embed([docs[i] for i in keep])
    else:
        vectors = np.asarray(vectors, dtype=np.float32)
        info.check_vectors(vectors.shape, len(docs), repr(path))
        check_appearance_rows(appearance, docs, appearance_dim, path)
        vectors = vectors[keep]
        appearance = None if appearance is None else [appearance[i] for i in keep]
    if not np.isfinite(vectors).all():
        raise ValueError(f"vectors for collection {path!r} contain NaN or inf")
    return Rows([docs[i] for i in keep], vectors, appearance)


def merge_rows(table: Any, data: Any, rows: int, replace: bool) -> WriteResult:
    """Write the arrow table `data` (`rows` rows) into the LanceDB `table` by id: new ids are inserted; stored ids are
    updated when `replace`, else left as they are."""
    if table.count_rows() == 0:
        table.add(data)  # a fresh table: a plain append, no join
        return WriteResult(rows, 0)
    merge = table.merge_insert("id")
    merge = merge.when_matched_update_all() if replace else merge
    # "null": LanceDB's check would refuse the null appearance of text rows; the vectors were checked in prepare_rows
    r = merge.when_not_matched_insert_all().execute(data, on_bad_vectors="null")
    return WriteResult(r.num_inserted_rows, r.num_updated_rows)
