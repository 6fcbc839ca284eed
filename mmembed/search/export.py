"""`mmembed encode`: embed command-line inputs (texts, image files, folders, text files) to a file.

.npy holds the (n, dim) float32 matrix in input order; .parquet holds one row per input with
its id, kind, text, source file and vector, which keeps the order self-describing. A .txt input
gives one row per non-blank line; its blank lines are listed as skipped with their line numbers, so
a user aligning .npy rows with lines sees exactly which lines have no row. Every input row gets its own
vector, matched by position (never by id): rows sharing an id (the same `id` in two CSVs) are all
kept, and `Encoded.notes` says that a .parquet's id column is ambiguous for them.
"""
from __future__ import annotations

import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from .discover import TEXT_EXTS, discover
from ..paths import write_atomically
from .documents import Document, SkippedFile, one_or_many, safe_str, sha1_hex
from .ingest import embed_group

FORMATS = (".npy", ".parquet")


@dataclass
class Encoded:
    documents: list[Document]
    vectors: np.ndarray  # (n, dim) float32, row i for documents[i]
    skipped: list[SkippedFile]
    notes: list[str] = field(default_factory=list)  # worth telling the user, nothing lost (e.g. ids repeated)


@dataclass
class Inputs:
    documents: list[Document] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)  # where each document came from ("file:line", "argument 3")
    skipped: list[SkippedFile] = field(default_factory=list)


def read_inputs(inputs: Union[str, Iterable[str]], literal_text: bool = False) -> Inputs:
    """Existing files / folders are read (images, txt, CSV, JSONL); anything else is a text. A bare str is one input."""
    out = Inputs()
    for i, x in enumerate(one_or_many(inputs, "inputs")):
        x = os.fspath(x)
        if not literal_text and os.path.exists(x):
            found = discover([x], keep_duplicates=True)  # every row is a row of the matrix, whatever its id
            out.documents += found.documents
            out.locations += found.locations
            out.skipped += found.skipped
            if os.path.isfile(x) and Path(x).suffix.lower() in TEXT_EXTS:
                out.skipped += _blank_lines(Path(x))
        else:
            out.documents.append(Document(id=f"arg:{i}:{sha1_hex(x.encode('utf-8', 'surrogatepass'))[:12]}", kind="text", text=x))
            out.locations.append(f"argument {i + 1}")
    return out


def _blank_lines(path: Path) -> list[SkippedFile]:
    """Each blank line of a .txt file named as skipped (it has no row)."""
    try:
        with path.open(encoding="utf-8-sig") as fh:
            blank = [n for n, line in enumerate(fh, start=1) if not line.strip()]
    except (OSError, UnicodeDecodeError):
        blank = []  # discover already reported the file itself
    note = "blank line: no row (rows follow the non-blank lines in order)"
    return [SkippedFile(f"{path}:{n}", note) for n in blank]


def _repeated_ids(docs: list[Document], locations: list[str], show: int = 5) -> list[str]:
    places: dict[str, list[str]] = defaultdict(list)
    for d, where in zip(docs, locations):
        places[d.id].append(where)
    repeated = {i: p for i, p in places.items() if len(p) > 1}
    if not repeated:
        return []
    listed = "; ".join(f"{i!r} at {', '.join(p)}" for i, p in list(repeated.items())[:show])
    more = f" ... and {len(repeated) - show} more" if len(repeated) > show else ""
    return [f"{len(repeated)} id(s) used by more than one row, each row still has its own vector (in input order): "
            f"{listed}{more}. In a .parquet output the id column is ambiguous for them: use the row order."]


def encode_inputs(model, inputs: Union[str, Iterable[str]], *, dim: Optional[int] = None, batch_size: int = 32,
                  literal_text: bool = False, progress: bool = True, image_role: str = "document") -> Encoded:
    from tqdm.auto import tqdm

    found = read_inputs(inputs, literal_text)
    docs, skipped = found.documents, list(found.skipped)
    dim = int(dim or model.dim)
    kept: list[Document] = []
    where: list[str] = []
    parts: list[np.ndarray] = []
    group = 4 * batch_size
    for s in tqdm(range(0, len(docs), group), desc="encode", unit="group", disable=not progress or len(docs) <= group):
        out = embed_group(model, docs[s : s + group], dim, batch_size, image_role)  # keeps the order, less skipped images
        kept += out.documents
        parts.append(out.vectors)
        skipped += out.skipped
        done = {id(d) for d in out.documents}
        where += [w for d, w in zip(docs[s : s + group], found.locations[s : s + group]) if id(d) in done]
    vectors = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    return Encoded(kept, vectors.astype(np.float32), skipped, notes=_repeated_ids(kept, where))


def write_vectors(path: str | os.PathLike, encoded: Encoded) -> Path:
    """The vectors as .npy (the matrix alone) or .parquet (id, kind, text, source and vector per row), written
    atomically: an interrupted export leaves the old file, never half a new one."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--out {path}: unknown format {path.suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    if path.suffix.lower() == ".npy":
        def save(tmp: Path) -> None:  # through a handle: np.save given a name not ending in ".npy" appends one
            with open(tmp, "wb") as fh:
                np.save(fh, encoded.vectors)

        return write_atomically(path, save)
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = encoded.documents
    if len({x.id for x in d}) < len(d):
        warnings.warn(f"{path}: " + (" ".join(encoded.notes) or "some rows share an id; use the row order"), stacklevel=2)
    dim = encoded.vectors.shape[1]
    table = pa.table({  # strings made storable (a non-UTF-8 file name escaped), as in a collection's rows
        "id": [safe_str(x.id) for x in d], "kind": [x.kind for x in d], "text": [safe_str(x.text) for x in d],
        "source": [safe_str(x.source) or None for x in d],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(encoded.vectors.reshape(-1)), dim),
    })
    return write_atomically(path, lambda tmp: pq.write_table(table, tmp))
