"""`mmembed encode`: embed command-line inputs (texts, image files, folders, text files) to a file.

.npy holds the (n, dim) float32 matrix in input order; .parquet holds one row per input with
its id, kind, text, source file and vector, which keeps the order self-describing. A .txt input
gives one row per non-blank line; its blank lines are listed as skipped with their line numbers, so
a user aligning .npy rows with lines sees exactly which lines have no row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .discover import TEXT_EXTS, TextOptions, discover
from .documents import Document, SkippedFile, sha1_hex
from .ingest import embed_group

FORMATS = (".npy", ".parquet")


@dataclass
class Encoded:
    documents: list[Document]
    vectors: np.ndarray  # (n, dim) float32
    skipped: list[SkippedFile]


def inputs_to_documents(inputs: Sequence[str], literal_text: bool = False) -> tuple[list[Document], list[SkippedFile]]:
    """Existing files / folders are read (images, txt, CSV, JSONL); anything else is a text."""
    docs: list[Document] = []
    skipped: list[SkippedFile] = []
    for i, x in enumerate(inputs):
        if not literal_text and os.path.isfile(x) and Path(x).suffix.lower() in TEXT_EXTS:
            lines, problem = _txt_lines(Path(x))
            docs += lines
            skipped += problem
        elif not literal_text and os.path.exists(x):
            found = discover([x])
            docs += found.documents
            skipped += found.skipped
        else:
            docs.append(Document(id=f"arg:{i}:{sha1_hex(x.encode('utf-8'))[:12]}", kind="text", text=x))
    return docs, skipped


def _txt_lines(path: Path) -> tuple[list[Document], list[SkippedFile]]:
    """A .txt file's non-blank lines as documents, and each blank line named as skipped (it has no row)."""
    found = discover([path])
    try:
        with path.open(encoding="utf-8") as fh:
            blank = [n for n, line in enumerate(fh, start=1) if not line.strip()]
    except (OSError, UnicodeDecodeError):
        blank = []  # discover already reported the file itself
    note = "blank line: no row (rows follow the non-blank lines in order)"
    return found.documents, list(found.skipped) + [SkippedFile(f"{path}:{n}", note) for n in blank]


def encode_inputs(model, inputs: Sequence[str], *, dim: Optional[int] = None, batch_size: int = 32,
                  literal_text: bool = False, progress: bool = True) -> Encoded:
    from tqdm.auto import tqdm

    docs, skipped = inputs_to_documents(inputs, literal_text)
    dim = int(dim or model.dim)
    kept: list[Document] = []
    parts: list[np.ndarray] = []
    group = 4 * batch_size
    for s in tqdm(range(0, len(docs), group), desc="encode", unit="group", disable=not progress or len(docs) <= group):
        out = embed_group(model, docs[s : s + group], dim, batch_size)
        order = {d.id: j for j, d in enumerate(out.documents)}
        for d in docs[s : s + group]:  # embed_group puts texts first: restore the input order
            if d.id in order:
                kept.append(d)
                parts.append(out.vectors[order[d.id]][None])
        skipped += out.skipped
    vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    return Encoded(kept, vectors.astype(np.float32), skipped)


def write_vectors(path: str | os.PathLike, encoded: Encoded) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {path}: unknown format {path.suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, encoded.vectors)
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = encoded.documents
    dim = encoded.vectors.shape[1]
    table = pa.table({
        "id": [x.id for x in d], "kind": [x.kind for x in d], "text": [x.text for x in d],
        "source": [x.source or None for x in d],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(encoded.vectors.reshape(-1)), dim),
    })
    pq.write_table(table, path)
    return path
