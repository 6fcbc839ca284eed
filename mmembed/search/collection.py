"""`Collection`: images and texts with their metadata and vectors in an embedded LanceDB table.

    col = mmembed.Collection("photos.lance", model="gemma3-270m-mm")
    col.add_images(["cat.png"], tags=["pets"]); col.add_texts(["ein roter Apfel"], language="de")
    col.search("a red apple", k=5, language="de")      # text, image (Path / PIL / array) or vector
    col.index_paths(["photos/"])                        # folders, txt / CSV / JSONL (see ingest.py)

Small collections are searched exactly (a flat scan); past `ann_threshold` rows an ANN index
(IVF with 8-bit scalar quantization, then an exact re-rank of the candidates) is built by
`ensure_index()` after ingest.
Vectors are L2-normalized, so the dot product is the cosine and `score = 1 - distance`.
Writes go through writes.py (one row per id, vectors checked before anything is written, a merge by id); searches
through query.py. Image rows also keep their appearance (the image tower's pooled features, mmembed/appearance.py): an image query
ranks them by (1 - w) cosine + w appearance cosine, which finds the same thing drawn or photographed another way.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from ..config import TextAgainst
from .facing import TextFacing, text_facing, text_query_vectors
from .documents import Document, Hit, as_documents, as_ids, image_rows, text_rows
from .ann import DEFAULT_ANN_THRESHOLD, MIN_ROWS, AnnParams, build_ann_index, has_vector_index, refresh_ann_index
from .filters import Values, build_where, quote
from .looks import Appearances, check_query_look, resolve_weight
from .query import RESULT_COLUMNS, TableQuery, search_table
from .writes import Rows, WriteResult, embed_documents, merge_rows, prepare_rows
from .info import (APPEARANCE, CollectionInfo, CollectionNotFoundError, ModelMismatchError, appearance_dim_of,
                   documents_table, read_info, table_schema)

TABLE = "items"
_ID_CHUNK = 2_000  # ids per `IN (...)` clause
MAX_K = 1_000_000  # hits one search may return


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
        appearance: bool = True,
    ):
        """Open (or, with create=True, start) the collection at `path` (a folder or a LanceDB URI).

        `model`: a name for mmembed.load(), a loaded model, or None (the recorded model of an
        existing collection; the default model for a new one). `dim`: store Matryoshka-truncated
        vectors (new collections only). `appearance=False`: a new collection keeps no image looks (C floats per
        image, 1,280 for the shipped tower; image queries then rank by cosine alone)."""
        import lancedb

        self.path = os.fspath(path)
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1):
            raise ValueError(f"dim must be a positive int (Matryoshka truncation), got {dim!r}")
        if _is_local(self.path) and Path(self.path).expanduser().is_file():
            raise CollectionNotFoundError(f"{self.path!r} is a regular file, not a collection folder")
        exists = self.exists(self.path)
        if not create and not exists:
            raise CollectionNotFoundError(
                f"no collection at {self.path!r}; create one with `mmembed index PATH... --collection {self.path}` "
                "or mmembed.Collection(path, model=...)"
            )
        self.ann_threshold = ann_threshold
        self.ann = ann
        self.batch_size = batch_size
        self._appearance_arg = bool(appearance)
        self._dim_arg = None if dim is None else int(dim)
        # a new local collection is not connected (which makes its folder) until its first row is written
        self._db = lancedb.connect(self.path) if exists or not _is_local(self.path) else None
        self._table = self._db.open_table(TABLE) if self._db is not None and TABLE in self._db.list_tables().tables else None
        self.info: Optional[CollectionInfo] = read_info(self._table.schema, self.path) if self._table is not None else None
        if self.info is not None and dim is not None and dim != self.info.dim:
            raise ModelMismatchError(f"collection {self.path!r} stores {self.info.dim}-d vectors; dim={dim} was asked")
        self._model_arg = model
        self._model = None
        self._kind_counts: Optional[tuple[int, int, int]] = None  # (table version, text rows, image rows)
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

    @property
    def appearance_dim(self) -> Optional[int]:
        """C of the stored appearance vectors; None when the collection keeps none (made by an mmembed before
        format 2, or by a model without an image tower)."""
        if self._table is not None:
            return appearance_dim_of(self._table.schema)
        from mmembed.appearance import appearance_dim

        keeps = self._appearance_arg and getattr(self.model, "image_tower", None) is not None
        return appearance_dim(self.model) if keeps else None

    def check_writable(self) -> CollectionInfo:
        """The model record rows are written under (for a new collection: checks its model and dim, creates nothing)."""
        return self.info if self.info is not None else CollectionInfo.for_model(self.model, self._dim_arg)

    def _ensure_table(self, written: Optional[CollectionInfo] = None):
        """The table, created on the first write under `written` (check_writable's record, when the caller has it:
        fingerprinting a model hashes every trained tensor)."""
        if self._table is None:
            written = written or self.check_writable()
            if self._db is None:
                import lancedb

                self._db = lancedb.connect(self.path)
            schema = table_schema(written, self.appearance_dim)
            self._table = self._db.create_table(TABLE, schema=schema, exist_ok=True)
            self._kind_counts = None
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

    def existing_hashes(self, ids: Union[str, Sequence[str]]) -> dict[str, str]:
        """id -> content_hash for the ids already stored (one id, or a list)."""
        return {r["id"]: r["content_hash"] for r in self._by_ids(as_ids(ids), ["id", "content_hash"])}

    def get(self, ids: Union[str, Sequence[str]]) -> list[Document]:
        """The stored documents for `ids` (one id, or a list), in that order; ids not stored are left out."""
        ids = as_ids(ids)
        found = {r["id"]: Document.from_row(r) for r in self._by_ids(ids, RESULT_COLUMNS)}
        return [found[i] for i in ids if i in found]

    def rows_from(self, folders: Sequence[str], files: Sequence[str]) -> list[dict[str, Any]]:
        """`id` and `source` of the stored rows from a file under one of `folders` or from one of `files`."""
        under = [f"starts_with(source, {quote(f.rstrip('/') + '/')})" for f in folders]
        files = [f for f in files if not any(f.startswith(d.rstrip("/") + "/") for d in folders)]
        clauses = under + [f"source IN ({', '.join(quote(f) for f in files[s : s + _ID_CHUNK])})"
                           for s in range(0, len(files), _ID_CHUNK)]
        return [r for c in clauses for r in self._rows(c, ["id", "source"])]

    def vectors(self, ids: Union[str, Sequence[str]]) -> np.ndarray:
        """Stored vectors (n, dim) for ids (one id, or a list; all must exist)."""
        ids = as_ids(ids)
        rows = {r["id"]: r["vector"] for r in self._by_ids(ids, ["id", "vector"])}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise KeyError(f"collection {self.path!r} has no rows with ids {missing[:5]}")
        return np.asarray([rows[i] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    def appearances(self, ids: Union[str, Sequence[str]]) -> list[Optional[np.ndarray]]:
        """Stored appearance vectors (C,) for ids (one id, or a list; all must exist); None for a row without one
        (a text, a row written with ready-made vectors) and for every row of a collection that keeps none."""
        ids = as_ids(ids)
        if self._table is not None and self.appearance_dim is None:
            return [None] * len(ids)  # (an empty collection falls through: every id is missing)
        rows = {r["id"]: r[APPEARANCE] for r in self._by_ids(ids, ["id", APPEARANCE])}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise KeyError(f"collection {self.path!r} has no rows with ids {missing[:5]}")
        return [None if rows[i] is None else np.asarray(rows[i], dtype=np.float32) for i in ids]

    # ---- embedding ----------------------------------------------------------------------------
    def embed_documents(self, docs: Sequence[Document], *, progress: Optional[bool] = None) -> np.ndarray:
        """(n, dim) vectors: text rows embed their text, image rows their image file."""
        return self._embed(docs, progress, looks=False)[0]

    def embed_documents_and_looks(self, docs: Sequence[Document], *, progress: Optional[bool] = None
                                  ) -> tuple[np.ndarray, list[Optional[np.ndarray]]]:
        """(n, dim) vectors and per document its (C,) appearance (None for texts), images in one tower pass."""
        return self._embed(docs, progress, looks=True)

    def embed_for_storage(self, docs: Sequence[Document], *, progress: Optional[bool] = None
                          ) -> tuple[np.ndarray, Appearances]:
        """What a write stores for `docs`: (n, dim) vectors and, when this collection keeps looks, each document's
        (C,) look (None for texts); None instead of looks when it keeps none. Images in one tower pass."""
        if self.appearance_dim is None:
            return self.embed_documents(docs, progress=progress), None
        return self.embed_documents_and_looks(docs, progress=progress)

    def _embed(self, docs: Sequence[Document], progress: Optional[bool], looks: bool):
        return embed_documents(self.model, docs, dim=self.dim, batch_size=self.batch_size, progress=progress, looks=looks)

    def query_vector(self, query: Any, query_lang: Optional[str] = None, gloss_weight: Optional[float] = None,
                     against: TextAgainst = "texts") -> np.ndarray:
        """(dim,) vector for a text (str), an image (Path / PIL / (h, w[, c]) array) or a vector. A text with its
        `query_lang` (sw, hi, ar, de, fr, es, ru) is glossed: moved toward its English gloss (mmembed/glossary.py).
        `against`: what a text query is compared with (config.TextAgainst; search picks it: texts_against)."""
        return self.query_vectors(query, query_lang, gloss_weight, against)[0]

    def query_vectors(self, query: Any, query_lang: Optional[str] = None, gloss_weight: Optional[float] = None,
                      facing: TextFacing = "texts") -> tuple[np.ndarray, Optional[np.ndarray]]:
        """((dim,) query vector, (dim,) a text query's vector for image rows or None): the second only when
        `facing` is 'both' (mmembed/search/facing.py); see query_vector."""
        if isinstance(query, str) and not query.strip():
            raise ValueError("the query text is empty; give a text to search for (or an image or a vector)")
        if isinstance(query, str):
            return text_query_vectors(self.model, self.dim, query, facing, query_lang, gloss_weight)
        from mmembed.glossary import options_problem

        problem = options_problem(False, query_lang, gloss_weight)  # only a text is glossed
        if problem is not None:
            raise ValueError(problem[1])
        if isinstance(query, np.ndarray) and query.ndim == 1:
            if query.shape[0] != self.dim:
                raise ModelMismatchError(f"query vector has {query.shape[0]} dims; collection {self.path!r} stores {self.dim}")
            return query.astype(np.float32), None
        return self.model.encode_image([query], dim=self.dim, role="query")[0], None

    # ---- writing ------------------------------------------------------------------------------
    def _arrow(self, rows: Rows):
        table = documents_table(rows.docs, rows.vectors, self.dim, rows.appearance, self.appearance_dim)
        return table.replace_schema_metadata(table_schema(self.info).metadata)

    def _prepare(self, docs: Sequence[Document], vectors: Optional[np.ndarray], appearance: Appearances = None):
        """(table, rows) to write; None when there is nothing (no table is created for nothing). Without vectors,
        the documents are embedded here, appearances included; with ready-made vectors, image rows keep the
        appearances given (None: none)."""
        docs = as_documents(docs)
        if not docs:
            if vectors is not None and len(vectors):
                raise ValueError(f"{len(vectors)} vectors given for 0 documents")
            return None
        info = self.check_writable()  # once: for a new collection it fingerprints the model
        rows = prepare_rows(docs, vectors, appearance, embed=self.embed_for_storage, info=info,
                            appearance_dim=self.appearance_dim, path=self.path)
        return self._ensure_table(info), rows

    def _merge(self, docs: Sequence[Document], vectors: Optional[np.ndarray], appearance: Appearances,
               replace: bool) -> WriteResult:
        prepared = self._prepare(docs, vectors, appearance)
        if prepared is None:
            return WriteResult(0, 0)
        table, rows = prepared
        return merge_rows(table, self._arrow(rows), len(rows.docs), replace)

    def upsert(self, docs: Sequence[Document], vectors: Optional[np.ndarray] = None,
               appearance: Appearances = None) -> WriteResult:
        """Insert documents, replacing stored rows with the same id. Vectors (and image rows' appearances) are
        computed when not given; with ready-made vectors, `appearance` gives per document its (C,) row or None."""
        return self._merge(docs, vectors, appearance, replace=True)

    def add(self, docs: Sequence[Document], vectors: Optional[np.ndarray] = None,
            appearance: Appearances = None) -> WriteResult:
        """Insert documents whose id is not stored yet; stored ids are left as they are."""
        return self._merge(docs, vectors, appearance, replace=False)

    def append(self, docs: Sequence[Document], vectors: np.ndarray, appearance: Appearances = None) -> int:
        """Bulk load: append rows WITHOUT checking for stored ids (the caller guarantees they are
        new; duplicates would then be stored twice). The fastest path for millions of vectors."""
        prepared = self._prepare(docs, vectors, appearance)
        if prepared is None:
            return 0
        table, rows = prepared
        table.add(self._arrow(rows))
        return len(rows.docs)

    def add_texts(
        self,
        texts: Union[str, Sequence[str]],
        *,
        ids: Union[str, Sequence[str], None] = None,
        language: Optional[str] = None,
        tags: Union[str, Iterable[str]] = (),
        meta: Optional[dict[str, Any]] = None,
        images: Optional[Sequence[Optional[str]]] = None,
    ) -> list[str]:
        """Upsert texts (one text, or a list); ids default to a hash of the text (adding the same text again
        updates it)."""
        docs = text_rows(texts, ids=ids, language=language, tags=tags, meta=meta, images=images)
        self.upsert(docs)
        return [d.id for d in docs]

    def add_images(
        self,
        paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
        *,
        captions: Union[str, Sequence[str], None] = None,
        tags: Union[str, Iterable[str]] = (),
        meta: Optional[dict[str, Any]] = None,
    ) -> list[str]:
        """Upsert image files (one path, or a list; ids from their absolute paths). For folders and skipping of
        unreadable files, use `index_paths`."""
        docs = image_rows(paths, captions=captions, tags=tags, meta=meta)
        self.upsert(docs)
        return [d.id for d in docs]

    def delete(self, ids: Union[str, Sequence[str]]) -> int:
        """Delete rows by id (one id, or a list); returns how many were stored."""
        ids = as_ids(ids)
        if self._table is None or not ids:
            return 0
        before = self._table.count_rows()
        for s in range(0, len(ids), _ID_CHUNK):
            self._table.delete(f"id IN ({', '.join(quote(i) for i in ids[s : s + _ID_CHUNK])})")
        return before - self._table.count_rows()

    def index_paths(self, paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]], **kwargs):
        """Index folders of images (recursive) and text / CSV / JSONL files (one path, or a list); see ingest.ingest."""
        from .ingest import ingest

        return ingest(self, paths, **kwargs)

    # ---- the ANN index --------------------------------------------------------------------------
    @property
    def has_index(self) -> bool:
        return has_vector_index(self._table, "vector")

    def create_index(self, params: Optional[AnnParams] = None) -> None:
        """(Re)build the ANN index on the vectors (and on the image rows' appearances, when there are enough of
        them), and a scalar index on ids for fast upserts."""
        table = self._ensure_table()
        appearance = None if self.appearance_dim is None else (APPEARANCE, self.appearance_dim)
        build_ann_index(table, self.dim, params or self.ann, self.path, appearance)

    def ensure_index(self) -> bool:
        """Build the index once the collection passes `ann_threshold`; fold new rows into it when
        more than 10% are unindexed. Returns True when it changed anything."""
        if len(self) < self.ann_threshold:
            return False
        if not self.has_index:
            self.create_index()
            return True
        if (self.appearance_dim is not None and not has_vector_index(self._table, APPEARANCE)
                and self._table.count_rows(f"{APPEARANCE} IS NOT NULL") >= MIN_ROWS):
            self.create_index()  # enough images have come since the index was built without theirs
            return True
        return refresh_ann_index(self._table)

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
        query_lang: Optional[str] = None,
        gloss_weight: Optional[float] = None,
        appearance_weight: Optional[float] = None,
    ) -> list[Hit]:
        """Top-k documents for a text, an image or a vector, optionally filtered by metadata.
        `exact=True` scans every vector even when an ANN index exists. `lexical_weight` > 0 (0.15 is the tuned
        value) re-orders a text query's dense candidates by cosine fused with romanized character n-grams of the
        documents' text (mmembed/lexical.py): names written in another script ("Москва" for "Moscow") match.
        `query_lang` (the language the query text is in: sw, hi, ar, de, fr, es, ru) glosses it with an English
        dictionary (mmembed/glossary.py; `gloss_weight` None is that language's tuned weight): everyday words the
        backbone does not know ('mbwa', dog) find their pictures.
        An image query also ranks the image rows by their appearance (`appearance_weight`, None: the tuned
        appearance.DEFAULT_APPEARANCE_WEIGHT; 0: cosine alone): see search_vector.
        A text query is embedded as `texts_against` says: against images where only pictures answer it, and both ways
        in a collection of texts and pictures (the pictures' places go to those nearest it against images)."""
        appearance = image_vector = None
        image = not isinstance(query, (str, np.ndarray)) or (isinstance(query, np.ndarray) and query.ndim > 1)
        if image and query_lang is None and gloss_weight is None and self.uses_looks(appearance_weight):
            vectors, looks = self.model.encode_image_and_appearance([query], dim=self.dim, role="query")
            vector, appearance = vectors[0], looks[0]  # one tower pass for both
        else:
            facing = self.texts_against(kind) if isinstance(query, str) else "texts"
            vector, image_vector = self.query_vectors(query, query_lang, gloss_weight, facing)
        return self.search_vector(vector, k, where=where, language=language, folder=folder,
                                  tag=tag, kind=kind, exact=exact,
                                  text=query if isinstance(query, str) else None, lexical_weight=lexical_weight,
                                  appearance=appearance, appearance_weight=appearance_weight,
                                  image_vector=image_vector)

    def texts_against(self, kind: Optional[str] = None) -> TextFacing:
        """What a text query here is compared with (mmembed/search/facing.py): 'images' when only image rows can
        answer it (`kind` 'image', or a collection of pictures alone), so it may borrow the pictures its words name
        (mmembed/neighbour_pictures.py); 'both' in a collection of texts and pictures (text rows ranked by the plain
        vector, the places images hold by the one against images); else 'texts'."""
        return text_facing(self.model, None if self._table is None else self.kind_counts, kind)

    def kind_counts(self) -> tuple[int, int]:
        """(text rows, image rows), counted once per table version: two filtered counts cost ~9 ms at 200k rows,
        more than an indexed search, and a text search asks for them every time (texts_against)."""
        version = self._table.version
        if self._kind_counts is None or self._kind_counts[0] != version:
            self._kind_counts = (version, self._table.count_rows("kind = 'text'"),
                                 self._table.count_rows("kind = 'image'"))
        return self._kind_counts[1], self._kind_counts[2]

    def uses_looks(self, appearance_weight: Optional[float]) -> bool:
        """Whether an image query here is ranked with its look (a weight > 0 and stored appearances)."""
        return resolve_weight(appearance_weight) > 0 and self._table is not None and self.appearance_dim is not None

    def search_vector(self, vector: np.ndarray, k: int = 10, *, exact: Optional[bool] = None,
                      text: Optional[str] = None, lexical_weight: float = 0.0,
                      appearance: Optional[np.ndarray] = None, appearance_weight: Optional[float] = None,
                      image_vector: Optional[np.ndarray] = None, **filters: Any) -> list[Hit]:
        """Top-k documents for a (dim,) vector; `filters` are those of `search` (where, language...). With the
        query's `text` and a `lexical_weight` > 0, the top max(100, 10 k) by cosine are re-ordered by the fused
        score (each hit's `score` stays its cosine). With a query image's (C,) `appearance`, the top max(100, 10 k)
        by cosine and the top max(100, 10 k) image rows by appearance are ranked together by (1 - w) cosine + w
        appearance cosine (w: `appearance_weight`, None: the tuned default) among themselves, while rows without an
        appearance (texts) keep their places in the cosine order (looks.fused_order); each hit's `score` stays its
        cosine. A text query's (dim,) `image_vector` (its vector against images: query_vectors with facing 'both')
        ranks the image rows: the top max(100, 10 k) by `vector` keep their places by kind, the places images hold
        go to the images nearest `image_vector` (query.two_sided_order), and an image hit's `score` is its cosine
        with `image_vector`."""
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an int in 1..{MAX_K:,} (hits to return), got {k!r}")
        k = int(k)
        if not (isinstance(lexical_weight, (int, float)) and 0 <= lexical_weight < float("inf")):
            raise ValueError(f"lexical_weight must be a finite number >= 0 (0: cosine only), got {lexical_weight!r}")
        lexical = text is not None and lexical_weight > 0
        if image_vector is not None and appearance is not None:
            raise ValueError("image_vector ranks a text query's image rows; an image query (with an appearance) has "
                             "one vector")
        vector = self._finite(vector, "query vector")
        image_vector = None if image_vector is None else self._finite(image_vector, "image_vector")
        if self._table is None:
            return []  # nothing stored: no dims to check against (and no model to load for them)
        for name, v in (("query vector", vector), ("image_vector", image_vector)):
            if v is not None and v.shape[0] != self.dim:
                raise ModelMismatchError(f"{name} has {v.shape[0]} dims; collection {self.path!r} stores {self.dim}")
        clause = build_where(**filters)
        weight = resolve_weight(appearance_weight)
        if appearance is not None and weight > 0 and self.appearance_dim is not None:  # format 1: cosine alone
            appearance = check_query_look(appearance, self.appearance_dim)
        else:
            appearance, weight = None, 0.0
        return search_table(self._table, self.ann, TableQuery(
            vector, k, clause, exact, text=text, lexical_weight=float(lexical_weight) if lexical else 0.0,
            appearance=appearance, appearance_weight=weight, image_vector=image_vector))

    @staticmethod
    def _finite(vector: np.ndarray, name: str) -> np.ndarray:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not np.isfinite(vector).all():
            raise ValueError(f"the {name} contains NaN or inf; give a finite vector")
        return vector
