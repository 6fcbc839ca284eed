"""`--engine ray`: embed with Ray Data (`map_batches` over an actor pool of embedders).

The driver discovers files, skips unchanged rows and commits to the Lance collection (one
writer, the same chunked upserts as the local engine); each actor loads the model ONCE by name
and embeds batches of rows. On a cluster the files must be readable at the same paths on every
node (shared storage), and mmembed and its weights must be installed there.

    ray.init(address="ray://head:10001")       # or RAY_ADDRESS=...; none: a local Ray instance
    mmembed index photos/ --collection s3://bucket/photos.lance --engine ray --workers 8
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import numpy as np

from .documents import Document, SkippedFile
from .info import APPEARANCE, documents_table
from .ingest import EmbeddedBatch, embed_group

if TYPE_CHECKING:
    from .collection import Collection


@dataclass(frozen=True)
class RayOptions:
    address: Optional[str] = None  # None: $RAY_ADDRESS if set, else a new local instance
    num_workers: int = 1  # embedder actors (each loads the model once)
    cpus_per_worker: float = 1.0  # also the torch threads of each actor
    batch_size: int = 64  # rows per map_batches call


class _Embedder:
    """One actor of the pool: loads the model in __init__, then embeds pyarrow batches."""

    def __init__(self, model: str, dim: int, batch_size: int, threads: int, appearance_dim: Optional[int] = None):
        import torch

        from ..registry import load

        torch.set_num_threads(max(1, threads))
        self.model = load(model)
        self.dim = dim
        self.batch_size = batch_size
        self.appearance_dim = appearance_dim  # the collection keeps appearances: image rows get theirs

    def __call__(self, batch):
        import pyarrow as pa

        docs = [Document.from_row(r) for r in batch.to_pylist()]
        out = embed_group(self.model, docs, self.dim, self.batch_size, appearance=self.appearance_dim is not None)
        table = documents_table(out.documents, out.vectors, self.dim, out.appearance, self.appearance_dim).append_column(
            "error", pa.array([""] * len(out.documents), pa.string()))
        if out.skipped:  # unreadable files travel back as rows with an error and a zero vector
            bad = {s.path: s.reason for s in out.skipped}
            failed = [d for d in docs if (d.source or d.image) in bad]
            errors = documents_table(failed, np.zeros((len(failed), self.dim), np.float32), self.dim, None,
                                     self.appearance_dim).append_column(
                "error", pa.array([bad[d.source or d.image] for d in failed], pa.string()))
            table = pa.concat_tables([table, errors])
        return table


def model_reference(collection: "Collection") -> str:
    """What each worker passes to mmembed.load(): a registered / adapter name or a saved folder."""
    from ..registry import list_models

    arg = collection._model_arg
    if isinstance(arg, (str, os.PathLike)):
        path = Path(arg).expanduser()
        return str(path.resolve()) if path.is_dir() else os.fspath(arg)
    name = collection.model.name
    if name in list_models():
        return name
    raise ValueError(
        f"the Ray engine loads the model by name in every worker, and model {name!r} is not a registered "
        "name or adapter: save it with model.save(folder) and pass model=folder"
    )


def _batch(table, dim: int) -> EmbeddedBatch:
    rows = table.to_pylist()
    ok = [r for r in rows if not r["error"]]
    vectors = np.asarray([r["vector"] for r in ok], dtype=np.float32).reshape(len(ok), dim)
    skipped = [SkippedFile(r["source"] or r["image"], r["error"]) for r in rows if r["error"]]
    looks = [None if r.get(APPEARANCE) is None else np.asarray(r[APPEARANCE], np.float32) for r in ok]
    return EmbeddedBatch([Document.from_row(r) for r in ok], vectors, skipped,
                         looks if APPEARANCE in table.column_names else None)


def ray_engine(collection: "Collection", docs: Sequence[Document], opts: RayOptions) -> Iterator[EmbeddedBatch]:
    """Stream embedded batches back to the driver as the actor pool produces them."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RuntimeError('--engine ray needs Ray Data: pip install "ray[data]" (or mmembed[ray])') from None

    if not docs:
        return
    started = False
    if not ray.is_initialized():
        address = opts.address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address)
        else:
            cpus = max(1, int(round(opts.num_workers * opts.cpus_per_worker)))
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        table = documents_table(docs)
        # one block per batch, so every actor of the pool gets work
        ds = ray.data.from_arrow([table.slice(s, opts.batch_size) for s in range(0, len(table), opts.batch_size)])
        ds = ds.map_batches(
            _Embedder,
            fn_constructor_kwargs=dict(model=model_reference(collection), dim=collection.dim,
                                       batch_size=collection.batch_size, threads=int(opts.cpus_per_worker),
                                       appearance_dim=collection.appearance_dim),
            compute=ray.data.ActorPoolStrategy(size=opts.num_workers),
            num_cpus=opts.cpus_per_worker,
            batch_size=opts.batch_size,
            batch_format="pyarrow",
        )
        for table in ds.iter_batches(batch_size=opts.batch_size, batch_format="pyarrow"):
            yield _batch(table, collection.dim)
    finally:
        if started:
            ray.shutdown()
