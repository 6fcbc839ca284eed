"""`Collection`: images and texts with their metadata and vectors in an embedded LanceDB table.

    col = mmembed.Collection("photos.lance", model="gemma3-270m-mm")
    col.add_images(["cat.png"], tags=["pets"]); col.add_texts(["ein roter Apfel"], language="de")
    col.search("a red apple", k=5, language="de")      # text, image (Path / PIL / array) or vector
    col.index_paths(["photos/"])                        # folders, txt / CSV / JSONL (see ingest.py)

Small collections are searched exactly (a flat scan); past `ann_threshold` rows an ANN index
(IVF with 8-bit scalar quantization, then an exact re-rank of the candidates) is built by
`ensure_index()` after ingest.
Vectors are L2-normalized, so the dot product is the cosine and `score = 1 - distance`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from .documents import Document, Hit, image_id, sha1_hex
from .filters import Values, build_where, quote
from .info import CollectionInfo, CollectionNotFoundError, ModelMismatchError, documents_table, read_info, table_schema

TABLE = "items"
DEFAULT_ANN_THRESHOLD = 50_000  # a flat scan of 50k 640-d vectors takes ~0.1-0.3 s on 2 cores
METRIC = "dot"  # on unit vectors: distance = 1 - cosine
# IVF partition size. At 1M clustered vectors (bench_search.py): 4,096 rows -> p50 36 ms at nprobes 8;
# 1,024 -> 17 ms at recall@10 1.000; 512 -> 15 ms but recall 0.90. k-means cost grows with the count.
PARTITION_ROWS = 1024
_ID_CHUNK = 2_000  # ids per `IN (...)` clause
LEXICAL_CANDIDATES = 100  # dense hits (at least 10 * k) that the lexical channel re-orders
_RESULT_COLUMNS = ["id", "kind", "text", "image", "source", "folder", "language", "tags", "meta", "content_hash"]


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


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    updated: int


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


def _is_local(path: str) -> bool:
    return "://" not in path


class Collection:
    def __init__(
        self,
        path: str | os.PathLike,
        model: Any = None,
        *,
        dim: Optional[int] = None,
        create: bool = True,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        ann: AnnParams = AnnParams(),
        batch_size: int = 32,
    ):
        """Open (or, with create=True, start) the collection at `path` (a folder or a LanceDB URI).

        `model`: a name for mmembed.load(), a loaded model, or None (the recorded model of an
        existing collection; the default model for a new one). `dim`: store Matryoshka-truncated
        vectors (new collections only)."""
        import lancedb

        self.path = os.fspath(path)
        if not create and not self.exists(self.path):
            raise CollectionNotFoundError(
                f"no collection at {self.path!r}; create one with `mmembed index PATH... --collection {self.path}` "
                "or mmembed.Collection(path, model=...)"
            )
        self.ann_threshold = ann_threshold
        self.ann = ann
        self.batch_size = batch_size
        self._dim_arg = dim
        self._db = lancedb.connect(self.path)
        self._table = self._db.open_table(TABLE) if TABLE in self._db.list_tables().tables else None
        self.info: Optional[CollectionInfo] = read_info(self._table.schema, self.path) if self._table is not None else None
        if self.info is not None and dim is not None and dim != self.info.dim:
            raise ModelMismatchError(f"collection {self.path!r} stores {self.info.dim}-d vectors; dim={dim} was asked")
        self._model_arg = model
        self._model = None
        if model is not None:
            _ = self.model  # an explicit model is checked now, not at the first search

    # ---- opening ------------------------------------------------------------------------------
    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        path = os.fspath(path)
        if _is_local(path) and not (Path(path) / f"{TABLE}.lance").is_dir():
            return False  # checked without lancedb.connect, which would create the folder
        import lancedb

        return TABLE in lancedb.connect(path).list_tables().tables

    @property
    def model(self):
        """The embedding model, loaded on first use and checked against the collection's record."""
        if self._model is None:
            model = self._model_arg
            if model is None or isinstance(model, (str, os.PathLike)):
                from ..registry import default_model_name, load

                name = os.fspath(model) if model is not None else (self.info.model if self.info else default_model_name())
                model = load(name)
            if self.info is not None:
                self.info.check_model(model, repr(self.path))
            self._model = model
        return self._model

    @property
    def dim(self) -> int:
        return self.info.dim if self.info is not None else int(self._dim_arg or self.model.dim)

    def _ensure_table(self):
        if self._table is None:
            written = CollectionInfo.for_model(self.model, self._dim_arg)
            self._table = self._db.create_table(TABLE, schema=table_schema(written), exist_ok=True)
            self.info = read_info(self._table.schema, self.path)  # another writer may have won the race
            if self.info != written:  # only then can it hold another model's vectors
                self.info.check_model(self.model, repr(self.path))
        return self._table

    # ---- sizes and lookups --------------------------------------------------------------------
    def __len__(self) -> int:
        return 0 if self._table is None else self._table.count_rows()

    def __contains__(self, doc_id: str) -> bool:
        return bool(self.existing_hashes([doc_id]))

    def __repr__(self) -> str:
        model = self.info.model if self.info else "(empty)"
        return f"Collection({self.path!r}, model={model!r}, rows={len(self)}, ann_index={self.has_index})"

    def _rows(self, where: str, columns: Sequence[str]) -> list[dict[str, Any]]:
        if self._table is None:
            return []
        return self._table.search().where(where).select(list(columns)).limit(None).to_arrow().to_pylist()

    def _by_ids(self, ids: Sequence[str], columns: Sequence[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for s in range(0, len(ids), _ID_CHUNK):
            chunk = ids[s : s + _ID_CHUNK]
            rows += self._rows(f"id IN ({', '.join(quote(i) for i in chunk)})", columns)
        return rows

    def existing_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """id -> content_hash for the ids already stored."""
        return {r["id"]: r["content_hash"] for r in self._by_ids(list(ids), ["id", "content_hash"])}

    def get(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents for `ids`, in that order; ids not stored are left out."""
        found = {r["id"]: Document.from_row(r) for r in self._by_ids(list(ids), _RESULT_COLUMNS)}
        return [found[i] for i in ids if i in found]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors (n, dim) for ids (all must exist)."""
        rows = {r["id"]: r["vector"] for r in self._by_ids(list(ids), ["id", "vector"])}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise KeyError(f"collection {self.path!r} has no rows with ids {missing[:5]}")
        return np.asarray([rows[i] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    # ---- embedding ----------------------------------------------------------------------------
    def embed_documents(self, docs: Sequence[Document], *, progress: Optional[bool] = None) -> np.ndarray:
        """(n, dim) vectors: text rows embed their text, image rows their image file."""
        out = np.zeros((len(docs), self.dim), dtype=np.float32)
        texts = [i for i, d in enumerate(docs) if d.kind == "text"]
        images = [i for i, d in enumerate(docs) if d.kind == "image"]
        kw = dict(batch_size=self.batch_size, dim=self.dim, progress=progress)
        if texts:
            out[texts] = self.model.encode_text([docs[i].text for i in texts], **kw)
        if images:
            out[images] = self.model.encode_image([docs[i].image for i in images], **kw)
        return out

    def query_vector(self, query: Any) -> np.ndarray:
        """(dim,) vector for a text (str), an image (Path / PIL / (h, w[, c]) array) or a vector."""
        if isinstance(query, str):
            return self.model.encode_text([query], dim=self.dim)[0]
        if isinstance(query, np.ndarray) and query.ndim == 1:
            if query.shape[0] != self.dim:
                raise ModelMismatchError(f"query vector has {query.shape[0]} dims; collection {self.path!r} stores {self.dim}")
            return query.astype(np.float32)
        return self.model.encode_image([query], dim=self.dim)[0]

    # ---- writing ------------------------------------------------------------------------------
    def _arrow(self, docs: Sequence[Document], vectors: np.ndarray):
        return documents_table(docs, vectors, self.dim).replace_schema_metadata(table_schema(self.info).metadata)

    def _prepare(self, docs: Sequence[Document], vectors: Optional[np.ndarray]):
        docs = list(docs)
        table = self._ensure_table()
        if vectors is None:
            vectors = self.embed_documents(docs)
        vectors = np.asarray(vectors, dtype=np.float32)
        self.info.check_vectors(vectors.shape, len(docs), repr(self.path))
        if not np.isfinite(vectors).all():
            raise ValueError(f"vectors for collection {self.path!r} contain NaN or inf")
        last = {d.id: i for i, d in enumerate(docs)}  # the same id twice in one call: the last wins
        keep = sorted(last.values())
        return table, [docs[i] for i in keep], vectors[keep]

    def _merge(self, docs: Sequence[Document], vectors: Optional[np.ndarray], replace: bool) -> WriteResult:
        table, docs, vectors = self._prepare(docs, vectors)
        if not docs:
            return WriteResult(0, 0)
        data = self._arrow(docs, vectors)
        if table.count_rows() == 0:
            table.add(data)  # a fresh table: a plain append, no join
            return WriteResult(len(docs), 0)
        merge = table.merge_insert("id")
        merge = merge.when_matched_update_all() if replace else merge
        r = merge.when_not_matched_insert_all().execute(data)
        return WriteResult(r.num_inserted_rows, r.num_updated_rows)

    def upsert(self, docs: Sequence[Document], vectors: Optional[np.ndarray] = None) -> WriteResult:
        """Insert documents, replacing stored rows with the same id. Vectors are computed when not given."""
        return self._merge(docs, vectors, replace=True)

    def add(self, docs: Sequence[Document], vectors: Optional[np.ndarray] = None) -> WriteResult:
        """Insert documents whose id is not stored yet; stored ids are left as they are."""
        return self._merge(docs, vectors, replace=False)

    def append(self, docs: Sequence[Document], vectors: np.ndarray) -> int:
        """Bulk load: append rows WITHOUT checking for stored ids (the caller guarantees they are
        new; duplicates would then be stored twice). The fastest path for millions of vectors."""
        table, docs, vectors = self._prepare(docs, vectors)
        if docs:
            table.add(self._arrow(docs, vectors))
        return len(docs)

    def add_texts(
        self,
        texts: Sequence[str],
        *,
        ids: Optional[Sequence[str]] = None,
        language: Optional[str] = None,
        tags: Iterable[str] = (),
        meta: Optional[dict[str, Any]] = None,
        images: Optional[Sequence[Optional[str]]] = None,
    ) -> list[str]:
        """Upsert texts; ids default to a hash of the text (adding the same text again updates it)."""
        texts = list(texts)
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        ids = list(ids) if ids is not None else ["txt:" + sha1_hex(f"{language}\n{t}".encode("utf-8"))[:24] for t in texts]
        pics = list(images) if images is not None else [None] * len(texts)
        docs = [
            Document(id=i, kind="text", text=t, image=p, language=language, tags=tuple(tags), meta=dict(meta or {}))
            for i, t, p in zip(ids, texts, pics)
        ]
        self.upsert(docs)
        return ids

    def add_images(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        captions: Optional[Sequence[str]] = None,
        tags: Iterable[str] = (),
        meta: Optional[dict[str, Any]] = None,
    ) -> list[str]:
        """Upsert image files (ids from their absolute paths). For folders and skipping of unreadable
        files, use `index_paths`."""
        paths = [Path(p) for p in paths]
        caps = list(captions) if captions is not None else [p.stem for p in paths]
        docs = [
            Document(id=image_id(p), kind="image", text=c, image=str(p.resolve()), source=str(p.resolve()),
                     tags=tuple(tags), meta=dict(meta or {}))
            for p, c in zip(paths, caps)
        ]
        self.upsert(docs)
        return [d.id for d in docs]

    def delete(self, ids: Sequence[str]) -> int:
        """Delete rows by id; returns how many were stored."""
        if self._table is None or not ids:
            return 0
        before = self._table.count_rows()
        for s in range(0, len(ids), _ID_CHUNK):
            self._table.delete(f"id IN ({', '.join(quote(i) for i in ids[s : s + _ID_CHUNK])})")
        return before - self._table.count_rows()

    def index_paths(self, paths: Sequence[str | os.PathLike], **kwargs):
        """Index folders of images (recursive) and text / CSV / JSONL files; see ingest.ingest."""
        from .ingest import ingest

        return ingest(self, paths, **kwargs)

    # ---- the ANN index --------------------------------------------------------------------------
    @property
    def has_index(self) -> bool:
        return self._table is not None and any(ix.columns == ["vector"] for ix in self._table.list_indices())

    def create_index(self, params: Optional[AnnParams] = None) -> None:
        """(Re)build the ANN index on the vectors, and a scalar index on ids for fast upserts."""
        p = params or self.ann
        table = self._ensure_table()
        n = table.count_rows()
        if n < 256:
            raise ValueError(f"collection {self.path!r} has {n} rows; an ANN index needs at least 256 (search is exact anyway)")
        sub = p.num_sub_vectors or next(s for s in (self.dim // 8, self.dim // 4, self.dim // 2, 1) if s and self.dim % s == 0)
        parts = p.num_partitions or max(1, n // PARTITION_ROWS)
        table.create_index("vector", config=_index_config(p.index_type, parts, sub), replace=True)
        from lancedb.index import BTree

        table.create_index("id", config=BTree(), replace=True)

    def ensure_index(self) -> bool:
        """Build the index once the collection passes `ann_threshold`; fold new rows into it when
        more than 10% are unindexed. Returns True when it changed anything."""
        n = len(self)
        if n < self.ann_threshold:
            return False
        if not self.has_index:
            self.create_index()
            return True
        name = next(ix.name for ix in self._table.list_indices() if ix.columns == ["vector"])
        stats = self._table.index_stats(name)
        if stats is not None and stats.num_unindexed_rows > 0.1 * n:
            self._table.optimize()  # adds unindexed rows to the existing index and compacts files
            return True
        return False

    # ---- search -------------------------------------------------------------------------------
    def search(
        self,
        query: Any,
        k: int = 10,
        *,
        where: Optional[str] = None,
        language: Values = None,
        folder: Values = None,
        tag: Values = None,
        kind: Optional[str] = None,
        exact: Optional[bool] = None,
        lexical_weight: float = 0.0,
    ) -> list[Hit]:
        """Top-k documents for a text, an image or a vector, optionally filtered by metadata.
        `exact=True` scans every vector even when an ANN index exists. `lexical_weight` > 0 (0.15 is the tuned
        value) re-orders a text query's dense candidates by cosine fused with romanized character n-grams of the
        documents' text (mmembed/lexical.py): names written in another script ("Москва" for "Moscow") match."""
        return self.search_vector(self.query_vector(query), k, where=where, language=language, folder=folder,
                                  tag=tag, kind=kind, exact=exact,
                                  text=query if isinstance(query, str) else None, lexical_weight=lexical_weight)

    def search_vector(self, vector: np.ndarray, k: int = 10, *, exact: Optional[bool] = None,
                      text: Optional[str] = None, lexical_weight: float = 0.0, **filters: Any) -> list[Hit]:
        """Top-k documents for a (dim,) vector; `filters` are those of `search` (where, language...). With the
        query's `text` and a `lexical_weight` > 0, the top max(100, 10 k) by cosine are re-ordered by the fused
        score (each hit's `score` stays its cosine)."""
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not (isinstance(lexical_weight, (int, float)) and 0 <= lexical_weight < float("inf")):
            raise ValueError(f"lexical_weight must be a finite number >= 0 (0: cosine only), got {lexical_weight!r}")
        lexical = text is not None and lexical_weight > 0
        limit = max(LEXICAL_CANDIDATES, 10 * k) if lexical else k
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self._table is None:
            return []
        if vector.shape[0] != self.dim:
            raise ModelMismatchError(f"query vector has {vector.shape[0]} dims; collection {self.path!r} stores {self.dim}")
        q = self._table.search(vector, vector_column_name="vector").distance_type(METRIC).limit(limit).select(_RESULT_COLUMNS + ["_distance"])
        clause = build_where(**filters)
        if clause:
            q = q.where(clause, prefilter=True)
        if exact or not self.has_index:
            q = q.bypass_vector_index()
        else:
            q = q.nprobes(self.ann.nprobes).refine_factor(self.ann.refine_factor)
        rows = q.to_arrow().to_pylist()
        if lexical and rows:
            from mmembed.lexical import rerank

            cosines = np.array([1.0 - float(r["_distance"]) for r in rows], dtype=np.float32)  # (n,)
            rows = [rows[i] for i in rerank(text, [r.get("text") or "" for r in rows], cosines, lexical_weight)[:k]]
        return [
            Hit(Document.from_row(r), score=1.0 - float(r["_distance"]), rank=rank)
            for rank, r in enumerate(rows, start=1)
        ]

