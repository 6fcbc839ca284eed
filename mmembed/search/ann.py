"""The ANN index of a collection's LanceDB table: IVF with 8-bit scalar quantization, then an exact re-rank.

Small collections are searched exactly (a flat scan); `Collection.ensure_index()` builds this index once a
collection passes its `ann_threshold` and folds new rows in later. Defaults measured in benchmarks/bench_search.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

DEFAULT_ANN_THRESHOLD = 50_000  # a flat scan of 50k 640-d vectors takes ~0.1-0.3 s on 2 cores
METRIC = "dot"  # on unit vectors: distance = 1 - cosine
# IVF partition size. At 1M clustered vectors (bench_search.py): 4,096 rows -> p50 36 ms at nprobes 8;
# 1,024 -> 17 ms at recall@10 1.000; 512 -> 15 ms but recall 0.90. k-means cost grows with the count.
PARTITION_ROWS = 1024
MIN_ROWS = 256  # below this an IVF index cannot be trained (and a flat scan is instant)


@dataclass(frozen=True)
class AnnParams:
    """How the ANN index is built and queried (defaults measured in benchmarks/bench_search.py)."""

    # With PARTITION_ROWS partitions, nprobes 8 + refine 5 is the measured default (see there).
    # IVF_PQ reaches only recall 0.47-0.86 at 1M (its 80-byte codes cannot rank close
    # neighbours); IVF_HNSW_SQ is no better and takes 10x longer to build.
    index_type: str = "IVF_SQ"
    num_partitions: Optional[int] = None  # None: rows / PARTITION_ROWS
    num_sub_vectors: Optional[int] = None  # IVF_PQ only; None: dim / 8 (PQ codes of 8 dims)
    nprobes: int = 8  # partitions searched per query
    refine_factor: int = 5  # re-rank refine_factor * k candidates with exact distances


def _index_config(index_type: str, partitions: int, sub_vectors: int):
    """LanceDB's config object for an index type name (IVF_PQ, IVF_SQ, IVF_HNSW_SQ, ...)."""
    from lancedb import index

    kinds = {"IVF_PQ": index.IvfPq, "IVF_SQ": index.IvfSq, "IVF_FLAT": index.IvfFlat, "IVF_HNSW_SQ": index.IvfHnswSq,
             "IVF_HNSW_PQ": index.IvfHnswPq}
    if index_type not in kinds:
        raise ValueError(f"unknown index type {index_type!r}; choose one of {', '.join(kinds)}")
    kwargs = dict(distance_type=METRIC, num_partitions=partitions)
    if index_type in ("IVF_PQ", "IVF_HNSW_PQ"):
        kwargs["num_sub_vectors"] = sub_vectors
    return kinds[index_type](**kwargs)


def build_ann_index(table, dim: int, params: AnnParams, where: str,
                    appearance: Optional[tuple[str, int]] = None) -> None:
    """(Re)build the vector index of `table` (rows of `dim`), and a scalar index on ids for fast upserts. With
    `appearance` (column, C) that column gets its own index, over its non-null rows, when they are enough."""
    n = table.count_rows()
    if n < MIN_ROWS:
        raise ValueError(f"collection {where!r} has {n} rows; an ANN index needs at least {MIN_ROWS} (search is exact anyway)")
    table.create_index("vector", config=_index_config(params.index_type, *_sizes(params, n, dim)), replace=True)
    if appearance is not None:
        column, c = appearance
        rows = table.count_rows(f"{column} IS NOT NULL")
        if rows >= MIN_ROWS:
            table.create_index(column, config=_index_config(params.index_type, *_sizes(params, rows, c)), replace=True)
    from lancedb.index import BTree

    table.create_index("id", config=BTree(), replace=True)


def _sizes(params: AnnParams, rows: int, dim: int) -> tuple[int, int]:
    """(partitions, PQ sub-vectors) for an index over `rows` vectors of `dim`."""
    sub = params.num_sub_vectors or next(s for s in (dim // 8, dim // 4, dim // 2, 1) if s and dim % s == 0)
    return params.num_partitions or max(1, rows // PARTITION_ROWS), sub


def has_vector_index(table, column: str) -> bool:
    return table is not None and any(ix.columns == [column] for ix in table.list_indices())


def refresh_ann_index(table) -> bool:
    """Fold unindexed rows into the existing vector index when they are more than 10% of the table."""
    name = next(ix.name for ix in table.list_indices() if ix.columns == ["vector"])
    stats = table.index_stats(name)
    if stats is not None and stats.num_unindexed_rows > 0.1 * table.count_rows():
        table.optimize()  # adds unindexed rows to the existing index and compacts files
        return True
    return False
