"""A collection's appearance channel: the rows a caller gives, and the fused ranking of an image query's candidates.

Image rows keep their appearance (the image tower's pooled features, mmembed/appearance.py) in the `appearance`
column; an image query gathers candidates by cosine and by appearance, then ranks them by

    score = (1 - w) * cos(query, vector) + w * cos(query look, row look)      image rows
    score = cos(query, vector)                                                rows without a look (texts)

so a picture of the same thing drawn or photographed another way comes first. Each hit's `score` stays its cosine
(as with the lexical channel): the fused score only orders.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

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


def rank_candidates(rows: Sequence[dict[str, Any]], vector: np.ndarray, appearance: np.ndarray, weight: float,
                    k: int) -> list[Hit]:
    """The top k of candidate rows (each with its `vector` and `appearance`, None for texts) by the fused score."""
    if not rows:
        return []
    cosine = np.asarray([r["vector"] for r in rows], dtype=np.float32) @ vector  # (n,)
    has = np.array([r[APPEARANCE] is not None for r in rows])
    looks = np.zeros(len(rows), dtype=np.float32)  # (n,)
    if has.any():
        looks[has] = np.asarray([r[APPEARANCE] for r in rows if r[APPEARANCE] is not None], np.float32) @ appearance
    fused = np.where(has, fuse_appearance(cosine, looks, weight), cosine)  # texts keep their cosine
    order = np.argsort(-fused, kind="stable")[:k]
    return [Hit(Document.from_row(rows[i]), score=float(cosine[i]), rank=rank) for rank, i in enumerate(order, start=1)]
