"""What a collection records about the model that filled it, and the table's Arrow schema.

The record lives in the Lance table's schema metadata (key `mmembed`), so it travels with the
data (a copied folder, object storage) and cannot drift from it. Vectors of another model (name,
version or dim) are refused: mixing two embedding spaces silently ruins every search. The model's
fingerprint (`serialization.model_fingerprint`) also catches a model retrained or changed under the
same name and version (a fine-tune exported twice, the label prior switched off); collections made
before it was recorded are checked by name and version only.

Format 2 adds the `appearance` column: image rows' pooled image-tower features (mmembed/appearance.py), which an image
query's search fuses with the cosine. It is null for texts and for rows written with ready-made vectors; format-1
collections have no such column and are searched by cosine alone.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Optional

FORMAT_VERSION = 2  # 2: the appearance column (an older mmembed refuses to write to such a table)
METADATA_KEY = b"mmembed"
APPEARANCE = "appearance"  # the column of image rows' appearance vectors (null for the rest)


def fingerprint_of(model) -> Optional[str]:
    """The model's fingerprint; None for a stand-in that only stores ready-made vectors (no weights to hash)."""
    if not hasattr(model, "state_dict"):
        return None
    from ..serialization import model_fingerprint

    return model_fingerprint(model)


class CollectionError(RuntimeError):
    """A collection cannot be used as asked; the message names the collection and the problem."""


class CollectionNotFoundError(CollectionError, FileNotFoundError):
    pass


class ModelMismatchError(CollectionError):
    pass


class NothingToIndexError(CollectionError, ValueError):
    """The inputs given to index hold no image and no text row (a typo'd path, an empty folder)."""


@dataclass(frozen=True)
class CollectionInfo:
    model: str  # the name mmembed.load() accepts
    model_version: str
    dim: int  # stored vector size (may be a Matryoshka truncation of the model's dim)
    format: int = FORMAT_VERSION
    fingerprint: Optional[str] = None  # of the model that embedded the vectors; None: an older collection

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "CollectionInfo":
        try:
            data = json.loads(text)
            fingerprint = data.get("fingerprint")
            info = cls(model=str(data["model"]), model_version=str(data["model_version"]), dim=int(data["dim"]),
                       format=int(data.get("format", FORMAT_VERSION)), fingerprint=None if fingerprint is None else str(fingerprint))
        except (ValueError, KeyError, TypeError) as err:
            raise CollectionError(f"{where}: unreadable mmembed metadata ({err}): {text[:200]!r}") from None
        if info.format > FORMAT_VERSION:
            raise CollectionError(f"{where}: written by a newer mmembed (format {info.format} > {FORMAT_VERSION}); upgrade mmembed")
        return info

    @classmethod
    def for_model(cls, model, dim: int | None = None) -> "CollectionInfo":
        dim = int(dim or model.dim)
        if not 0 < dim <= model.dim:
            raise ValueError(f"dim must be in 1..{model.dim} for model {model.name!r}, got {dim}")
        return cls(model=model.name, model_version=str(model.config.version), dim=dim, fingerprint=fingerprint_of(model))

    def check_model(self, model, where: str) -> None:
        """Raise ModelMismatchError unless `model` produced (and will produce) this collection's vectors."""
        same = model.name == self.model and str(model.config.version) == self.model_version
        if not same or model.dim < self.dim:
            raise ModelMismatchError(
                f"collection {where} holds vectors of model {self.model!r} (version {self.model_version}, dim {self.dim}); "
                f"model {model.name!r} (version {model.config.version}, dim {model.dim}) embeds into another space. "
                f"Use model={self.model!r} or index into a new collection."
            )
        from ..serialization import legacy_fingerprints

        now = fingerprint_of(model) if self.fingerprint is not None else None
        # now is None for a stand-in without weights; older code's fingerprints of the same model are accepted too
        if now is not None and now != self.fingerprint and self.fingerprint not in legacy_fingerprints(model):
            raise ModelMismatchError(
                f"collection {where} holds vectors of model {self.model!r} as it was when they were embedded "
                f"(fingerprint {self.fingerprint}); the {model.name!r} given now embeds differently (fingerprint "
                f"{now}): it was retrained, replaced or changed (e.g. its label prior switched off). "
                "Index into a new collection with it, or use the model that built this one."
            )

    def check_vectors(self, shape: tuple[int, ...], n: int, where: str) -> None:
        if len(shape) != 2 or shape[0] != n or shape[1] != self.dim:
            raise ModelMismatchError(
                f"collection {where} stores {self.dim}-d vectors of model {self.model!r}; got an array of shape "
                f"{tuple(shape)} for {n} documents (expected ({n}, {self.dim}))"
            )


def document_fields():
    """Arrow fields of a stored document (documents.Document.to_row), without the vector."""
    import pyarrow as pa

    return [
        pa.field("id", pa.string(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("text", pa.string()),
        pa.field("image", pa.string()),
        pa.field("source", pa.string()),
        pa.field("folder", pa.string()),
        pa.field("language", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("meta", pa.string()),  # JSON object
        pa.field("content_hash", pa.string()),
    ]


def appearance_field(appearance_dim: int):
    import pyarrow as pa

    return pa.field(APPEARANCE, pa.list_(pa.float32(), appearance_dim), nullable=True)  # (C,) unit, or null


def table_schema(info: CollectionInfo, appearance_dim: Optional[int] = None):
    """The table's schema; with `appearance_dim` (the model has an image tower) it has the appearance column."""
    import pyarrow as pa

    vector = pa.field("vector", pa.list_(pa.float32(), info.dim))  # (dim,) L2-normalized
    fields = document_fields()
    extra = [appearance_field(appearance_dim)] if appearance_dim else []
    return pa.schema(fields[:1] + [vector] + extra + fields[1:], metadata={METADATA_KEY: info.to_json().encode("utf-8")})


def appearance_dim_of(schema) -> Optional[int]:
    """C of a table's appearance column; None when it has none (a format-1 collection, a model without images)."""
    if APPEARANCE not in schema.names:
        return None
    return int(schema.field(APPEARANCE).type.list_size)


def appearance_array(rows, appearance_dim: int):
    """Per row an (appearance_dim,) vector or None -> a FixedSizeList column, None as null."""
    import numpy as np
    import pyarrow as pa

    has = np.array([r is not None for r in rows], dtype=bool)
    if not has.any():  # texts, ready-made vectors: no (n, C) block of zeros for a bulk load of millions
        return pa.nulls(len(rows), pa.list_(pa.float32(), appearance_dim))
    values = np.zeros((len(rows), appearance_dim), dtype=np.float32)
    for i in np.flatnonzero(has):
        values[i] = rows[i]
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), appearance_dim, mask=pa.array(~has))


def documents_table(docs, vectors=None, dim: int = 0, appearance=None, appearance_dim: Optional[int] = None):
    """Documents (and optionally their (n, dim) vectors as a `vector` column) -> a pyarrow Table. With
    `appearance_dim`, an appearance column follows: `appearance` holds per document a vector or None (None: all null)."""
    import numpy as np
    import pyarrow as pa

    fields = document_fields()
    rows = [d.with_hash().to_row() for d in docs]
    columns = [pa.array([r[f.name] for r in rows], type=f.type) for f in fields]
    if appearance_dim:
        columns.insert(1, appearance_array(appearance if appearance is not None else [None] * len(docs), appearance_dim))
        fields.insert(1, appearance_field(appearance_dim))
    if vectors is not None:
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        columns.insert(1, pa.FixedSizeListArray.from_arrays(flat, dim))
        fields.insert(1, pa.field("vector", pa.list_(pa.float32(), dim)))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def read_info(schema, where: str) -> CollectionInfo:
    meta = schema.metadata or {}
    if METADATA_KEY not in meta:
        raise CollectionError(f"{where}: table has no mmembed metadata; it was not created by mmembed.Collection")
    return CollectionInfo.from_json(meta[METADATA_KEY].decode("utf-8"), where)
