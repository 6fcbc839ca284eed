"""A collection's appearance channel: the rows a caller gives, and the fused ranking of an image query's candidates.

Image rows keep their appearance (the image tower's pooled features, mmembed/appearance.py) in the `appearance`
column; an image query gathers candidates by cosine and by appearance, then ranks them by

    score = (1 - w) * cos(query, vector) + w * cos(query look, row look)      image rows

so a picture of the same thing drawn or photographed another way comes first. Texts have no look, and a look's cosine
is not on the scale of the shared space's (the tower's features are post-ReLU: every pair is positive), so the fused
score never competes with a text's cosine: the candidates are ordered by cosine, and the places images hold in that
order are filled with the images in fused order (texts keep theirs). In a collection of images alone that is the
fused order. Each hit's `score` stays its cosine (as with the lexical channel): the fused score only orders.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from mmembed.appearance import DEFAULT_APPEARANCE_WEIGHT, check_appearance_weight, fuse_appearance

from .documents import Document, Hit
from .info import APPEARANCE

Appearances = Optional[Sequence[Optional[np.ndarray]]]  # per document its (C,) appearance, or None (texts)


def resolve_weight(weight: Optional[float]) -> float:
    """An image query's appearance weight: None is the tuned default; anything else must be in [0, 1]."""
    return DEFAULT_APPEARANCE_WEIGHT if weight is None else check_appearance_weight(weight)


def check_appearance_rows(appearance: Appearances, docs: Sequence[Document], appearance_dim: Optional[int],
                          where: str) -> None:
    """Appearances given with ready-made vectors: one per document, an image's a finite (C,) row, a text's None."""
    if appearance is None:
        return
    if len(appearance) != len(docs):
        raise ValueError(f"{len(appearance)} appearance rows given for {len(docs)} documents")
    for i, (row, d) in enumerate(zip(appearance, docs)):
        if row is None:
            continue
        if d.kind != "image":
            raise ValueError(f"appearance row #{i} belongs to {d.kind} document {d.id!r}; only images have one")
        if appearance_dim is None:
            raise ValueError(f"collection {where!r} keeps no appearance vectors (format 1, or a model without an "
                             "image tower); give appearance=None")
        if np.shape(row) != (appearance_dim,) or not np.isfinite(row).all():
            raise ValueError(f"appearance row #{i} (document {d.id!r}) must be {appearance_dim} finite numbers, got "
                             f"shape {np.shape(row)}")


def check_query_look(appearance: np.ndarray, appearance_dim: int) -> np.ndarray:
    """(C,) float32 of a query image's appearance, or a ValueError naming what is wrong."""
    appearance = np.asarray(appearance, dtype=np.float32).reshape(-1)
    if appearance.shape[0] != appearance_dim or not np.isfinite(appearance).all():
        raise ValueError(f"the query appearance must be {appearance_dim} finite numbers (the image tower's "
                         f"features), got {appearance.shape[0]}")
    return appearance


def fixed_rows(column) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow fixed-size-list column -> ((n, width) float32, (n,) bool: the row is not null). Straight from the
    Arrow buffers: a to_pylist of a few hundred 1,280-float rows would cost more than the search."""
    col = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    width = col.type.list_size
    flat = col.values.slice(col.offset * width, len(col) * width)  # every slot, null rows' included
    values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(col), width)
    return values, np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def fused_order(cosine: np.ndarray, look_cosine: np.ndarray, has_look: np.ndarray, weight: float) -> np.ndarray:
    """(n,) candidate indices, best first: the cosine order, with the places of rows that have a look (images)
    refilled by those rows in fused-score order; rows without one (texts) keep their places."""
    by_cosine = np.argsort(-cosine, kind="stable")
    images = np.flatnonzero(has_look)
    fused = fuse_appearance(cosine[images], look_cosine[images], weight)
    order = by_cosine.copy()
    order[has_look[by_cosine]] = images[np.argsort(-fused, kind="stable")]
    return order


def rank_candidates(table, vector: np.ndarray, appearance: np.ndarray, weight: float, k: int) -> list[Hit]:
    """The top k of a candidate table's rows (with `vector` and `appearance` columns, null for texts) in
    `fused_order`; a row's hit keeps its cosine as `score`."""
    if table.num_rows == 0:
        return []
    vectors, _ = fixed_rows(table.column("vector"))
    cosine = vectors @ vector  # (n,)
    looks, has = fixed_rows(table.column(APPEARANCE))
    order = fused_order(cosine, looks @ appearance, has, weight)[:k]
    rows = table.take(order).to_pylist()
    return [Hit(Document.from_row(r), score=float(cosine[i]), rank=rank)
            for rank, (i, r) in enumerate(zip(order, rows), start=1)]
