"""Searching one collection table: a query vector's nearest rows, re-ordered by the lexical or the appearance channel.

`Collection.search_vector` checks its arguments and calls `search_table`; this module knows LanceDB's query builder
and the candidate rules, nothing about models or writes:

- dense: the k nearest rows by cosine (the ANN index once one exists, unless `exact`);
- lexical (a text query, `lexical_weight` > 0): the max(100, 10 k) nearest re-ordered by cosine fused with romanized
  character n-grams (mmembed/lexical.py);
- appearance (an image query with its look): the max(100, 10 k) nearest by cosine and the max(100, 10 k) image rows
  nearest by look, ranked by looks.rank_candidates;
- two-sided (a text query with its own vector for image rows, in a collection of texts and pictures): the rows nearest
  the plain vector keep their places by kind, and the places images hold go to the images nearest the vector against
  images (two_sided_order).
A hit's `score` is always its cosine (an image's, in a two-sided search, with the vector against images); the channels
only order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .ann import METRIC, AnnParams, has_vector_index
from .documents import Document, Hit
from .info import APPEARANCE
from .looks import rank_candidates

LEXICAL_CANDIDATES = 100  # dense hits (at least 10 * k) that the lexical channel re-orders
APPEARANCE_CANDIDATES = 100  # per channel (at least 10 * k): an image query's candidates by cosine and by appearance
RESULT_COLUMNS = ["id", "kind", "text", "image", "source", "folder", "language", "tags", "meta", "content_hash"]


@dataclass(frozen=True)
class TableQuery:
    """One checked search: a (d,) unit query vector and how its candidates are ordered."""
    vector: np.ndarray  # (d,) float32
    k: int
    clause: Optional[str] = None  # SQL filter (filters.build_where), applied before ranking
    exact: Optional[bool] = None  # True: scan every vector even when an ANN index exists
    text: Optional[str] = None  # the query text, for the lexical channel
    lexical_weight: float = 0.0
    appearance: Optional[np.ndarray] = None  # (C,) the query image's look, for the appearance channel
    appearance_weight: float = 0.0
    image_vector: Optional[np.ndarray] = None  # (d,) a text query's vector for image rows (against images), two-sided


def nearest(table, ann: AnnParams, column: str, vector: np.ndarray, limit: int, clause: Optional[str],
            exact: Optional[bool], columns: Sequence[str] = ()):
    """The `limit` rows nearest to `vector` in `column` (its ANN index unless `exact`), after the filter, as an
    Arrow table."""
    q = (table.search(vector, vector_column_name=column).distance_type(METRIC).limit(limit)
         .select(RESULT_COLUMNS + list(columns) + ["_distance"]))
    if clause:
        q = q.where(clause, prefilter=True)
    if exact or not has_vector_index(table, column):
        q = q.bypass_vector_index()
    else:
        q = q.nprobes(ann.nprobes).refine_factor(ann.refine_factor)
    return q.to_arrow()


def search_table(table, ann: AnnParams, query: TableQuery) -> list[Hit]:
    """The top `query.k` hits of `table` (rows with `vector`, and `appearance` when the look is used)."""
    if query.appearance is not None and query.appearance_weight > 0:
        return _fused_image_search(table, ann, query)
    lexical = query.text is not None and query.lexical_weight > 0
    two_sided = query.image_vector is not None
    limit = max(LEXICAL_CANDIDATES, 10 * query.k) if lexical or two_sided else query.k
    rows = _ordered(query, nearest(table, ann, "vector", query.vector, limit, query.clause, query.exact).to_pylist())
    if two_sided and any(r["kind"] == "image" for r in rows):
        images_only = "kind = 'image'" + (f" AND ({query.clause})" if query.clause else "")
        images = nearest(table, ann, "vector", query.image_vector, limit, images_only, query.exact).to_pylist()
        rows = two_sided_order(rows, _ordered(query, images))
    return [Hit(Document.from_row(r), score=1.0 - float(r["_distance"]), rank=rank)
            for rank, r in enumerate(rows[:query.k], start=1)]


def _ordered(query: TableQuery, rows: list[dict]) -> list[dict]:
    """Rows nearest first (as LanceDB gives them), re-ordered by the lexical channel when the query asks for it."""
    if query.text is None or query.lexical_weight <= 0 or not rows:
        return rows
    from mmembed.lexical import rerank

    cosines = np.array([1.0 - float(r["_distance"]) for r in rows], dtype=np.float32)  # (n,)
    return [rows[i] for i in rerank(query.text, [r.get("text") or "" for r in rows], cosines, query.lexical_weight)]


def two_sided_order(rows: list[dict], images: list[dict]) -> list[dict]:
    """A text query's candidates by its plain vector (`rows`, best first) with the places image rows hold refilled
    by `images` (the image rows by its vector against images, best first): texts keep their places, and a collection
    shows as many pictures as before, the ones its words name first. Were the ANN index to give fewer images than
    places, the plain order's images fill the rest."""
    chosen = images + [r for r in rows if r["kind"] == "image"]
    seen: set = set()
    refill = iter(r for r in chosen if not (r["id"] in seen or seen.add(r["id"])))
    return [next(refill) if r["kind"] == "image" else r for r in rows]


def _fused_image_search(table, ann: AnnParams, query: TableQuery) -> list[Hit]:
    """An image query: the nearest rows by cosine and the nearest image rows by appearance, ranked together."""
    import pyarrow as pa

    limit = max(APPEARANCE_CANDIDATES, 10 * query.k)
    extra = ["vector", APPEARANCE]
    by_look = f"{APPEARANCE} IS NOT NULL" + (f" AND ({query.clause})" if query.clause else "")
    found = pa.concat_tables([nearest(table, ann, "vector", query.vector, limit, query.clause, query.exact, extra),
                              nearest(table, ann, APPEARANCE, query.appearance, limit, by_look, query.exact, extra)])
    first = {}  # id -> its first row (a row both channels found once)
    for i, doc_id in enumerate(found.column("id").to_pylist()):
        first.setdefault(doc_id, i)
    return rank_candidates(found.take(pa.array(list(first.values()), pa.int64())), query.vector, query.appearance,
                           query.appearance_weight, query.k)
