"""Finding what to index: folders (recursive) of images, and text / CSV / TSV / JSONL files.

Each input becomes `Document`s with stable ids (see documents.py) before anything is embedded;
files and rows that cannot be used are collected as `SkippedFile`s with the reason, never raised,
so one bad file in 10,000 does not stop an index run.

Text files: `.txt` gives one row per non-empty line. CSV / TSV / JSONL rows take their text from
`text_field` (default: the first of text, caption, title, sentence), an optional `id`, `language`
(or `lang`), `tags` (a list, or a string split on commas), `image` (a picture shown with the hit,
relative to the file) and keep every other field as metadata.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from .documents import Document, SkippedFile, image_id, text_id

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
TEXT_EXTS = frozenset({".txt"})
TABLE_EXTS = frozenset({".csv", ".tsv"})
JSONL_EXTS = frozenset({".jsonl", ".ndjson"})
SUPPORTED = IMAGE_EXTS | TEXT_EXTS | TABLE_EXTS | JSONL_EXTS
TEXT_FIELDS = ("text", "caption", "title", "sentence")
_RESERVED = {"id", "language", "lang", "tags", "image"}


@dataclass(frozen=True)
class TextOptions:
    text_field: Optional[str] = None  # None: the first of TEXT_FIELDS a row has
    language: Optional[str] = None  # for rows that do not say
    tags: tuple[str, ...] = ()  # added to every document


@dataclass
class Discovery:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def num_images(self) -> int:
        return sum(d.kind == "image" for d in self.documents)


def _rel_folder(path: Path, root: Optional[Path]) -> str:
    if root is None:
        return ""
    rel = path.parent.relative_to(root).as_posix()
    return "" if rel == "." else rel


def _walk(root: Path) -> Iterator[Path]:
    """Files under root, sorted, hidden files and folders left out; symlinked folders not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.replace(";", ",").split(",") if t.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(t) for t in value)
    raise ValueError(f"tags must be a list or a comma-separated string, got {type(value).__name__}")


def _row_document(path: Path, row_key: int, data: dict[str, Any], opts: TextOptions, folder: str) -> Document:
    fields = (opts.text_field,) if opts.text_field else TEXT_FIELDS
    name = next((f for f in fields if f in data), None)
    if name is None:
        raise ValueError(f"no text field (looked for {', '.join(fields)}; found {', '.join(map(str, data)) or 'none'})")
    text = data[name]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"field {name!r} is empty or not a string")
    image = data.get("image")
    if image:
        image = str((path.parent / str(image)).resolve())
    own_id = data.get("id")
    return Document(
        id=str(own_id) if own_id not in (None, "") else text_id(path, row_key),
        kind="text",
        text=text,
        image=image or None,
        source=str(path.resolve()),
        folder=folder,
        language=str(data.get("language") or data.get("lang") or opts.language or "") or None,
        tags=opts.tags + _tags(data.get("tags")),
        meta={k: v for k, v in data.items() if k not in _RESERVED and k != name},
    )


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) for txt / CSV / TSV / JSONL; a JSON error yields the exception."""
    ext = path.suffix.lower()
    with path.open(encoding="utf-8", newline="") as fh:
        if ext in TEXT_EXTS:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    yield lineno, {"text": line.strip()}
        elif ext in TABLE_EXTS:
            reader = csv.DictReader(fh, delimiter="\t" if ext == ".tsv" else ",")
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
        else:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        yield lineno, json.loads(line)
                    except json.JSONDecodeError as err:
                        yield lineno, err


def text_documents(path: Path, opts: TextOptions, folder: str = "") -> tuple[list[Document], list[SkippedFile]]:
    docs, skipped = [], []
    try:
        for lineno, data in _rows(path):
            where = f"{path}:{lineno}"
            if isinstance(data, Exception):
                skipped.append(SkippedFile(where, f"not valid JSON ({data.msg})"))
                continue
            if not isinstance(data, dict):
                skipped.append(SkippedFile(where, f"expected an object, got {type(data).__name__}"))
                continue
            text_opts = opts if path.suffix.lower() not in TEXT_EXTS else TextOptions(None, opts.language, opts.tags)
            try:
                docs.append(_row_document(path, lineno, data, text_opts, folder))
            except ValueError as err:
                skipped.append(SkippedFile(where, str(err)))
    except UnicodeDecodeError as err:
        return [], [SkippedFile(str(path), f"not UTF-8 text ({err.reason} at byte {err.start})")]
    except (OSError, csv.Error) as err:
        return [], [SkippedFile(str(path), f"unreadable: {err}")]
    return docs, skipped


def image_document(path: Path, opts: TextOptions, folder: str = "") -> Document:
    path = path.resolve()
    return Document(
        id=image_id(path), kind="image", text=path.stem.replace("_", " "), image=str(path), source=str(path),
        folder=folder, tags=opts.tags,
    )


def _file(path: Path, root: Optional[Path], opts: TextOptions, out: Discovery) -> None:
    ext = path.suffix.lower()
    folder = _rel_folder(path, root)
    if ext in IMAGE_EXTS:
        out.documents.append(image_document(path, opts, folder))
    elif ext in TEXT_EXTS | TABLE_EXTS | JSONL_EXTS:
        docs, skipped = text_documents(path, opts, folder)
        out.documents += docs
        out.skipped += skipped
    else:
        out.skipped.append(SkippedFile(str(path), f"unsupported file type {ext or '(none)'}; "
                                                  f"supported: {', '.join(sorted(SUPPORTED))}"))


def discover(paths: Sequence[str | os.PathLike] | Iterable[str | os.PathLike], opts: TextOptions = TextOptions()) -> Discovery:
    """All documents under `paths` (folders are walked recursively), plus what was skipped and why."""
    out = Discovery()
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            root = path.resolve()
            for f in _walk(root):
                _file(f, root, opts, out)
        elif path.is_file():
            _file(path, None, opts, out)
        else:
            out.skipped.append(SkippedFile(str(path), "does not exist"))
    seen: set[str] = set()
    unique = []
    for d in out.documents:  # the same file under two given paths is indexed once
        if d.id not in seen:
            seen.add(d.id)
            unique.append(d)
    out.documents = unique
    return out
