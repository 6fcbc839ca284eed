"""Finding what to index: folders (recursive) of images, and text / CSV / TSV / JSONL files.

Each input becomes `Document`s with stable ids (see documents.py) before anything is embedded;
files and rows that cannot be used are collected as `SkippedFile`s with the reason, never raised,
so one bad file in 10,000 does not stop an index run.

Text files (read as UTF-8, a byte-order mark allowed): `.txt` gives one row per non-empty line. CSV /
TSV / JSONL rows take their text from `text_field` (default: the first of text, caption, title,
sentence), an optional `id`, `language` (or `lang`), `tags` (a list, or a string split on commas),
`image` (a picture shown with the hit, relative to the file) and keep every other field as metadata.
A row without an `id` is identified by its file and its text (the n-th row with that text), not its line
number, so lines added or removed elsewhere do not shift it. A row whose id another row already took
is skipped and listed with both places. Symlink loops, broken symlinks and unlistable folders are
skipped and listed too.

A `Discovery` also says what it covered: the folders walked and the text files read in full. Stored
rows from there that this run no longer found are gone from disk (see ingest.py, which removes them).
When in doubt a row is kept: hidden names below a walked folder, a symlinked folder (listed, not
followed), a broken symlink and a text file with any skipped row are not covered (their rows stay).
"""
from __future__ import annotations

import csv
import errno
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from mmembed.tokenizer import unicode_problem

from .documents import Document, SkippedFile, as_tags, image_id, one_or_many, safe_str, sha1_hex, text_id

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", as_tags(self.tags, "TextOptions"))


@dataclass
class Discovery:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)  # where each document came from: "file:line" or the file
    folders: list[str] = field(default_factory=list)  # absolute folders walked (as stored: safe_str)
    files_read: set[str] = field(default_factory=set)  # text files read to the end (as stored)
    unreadable: list[str] = field(default_factory=list)  # files / folders that could not be read (as stored)
    keep_duplicates: bool = False  # True: rows sharing an id are all kept (`mmembed encode`: a matrix row each)
    _first: dict[str, tuple[tuple[str, str], str]] = field(default_factory=dict, repr=False)
    _sets: Optional[tuple[tuple[int, int], frozenset[str], frozenset[str]]] = field(default=None, repr=False)

    @property
    def num_images(self) -> int:
        return sum(d.kind == "image" for d in self.documents)

    def add(self, doc: Document, origin: tuple[str, str], where: str) -> None:
        """Keep `doc` unless its id is taken: by the same row (one file given twice: silently once) or by
        another row (listed as skipped, naming both)."""
        first = self._first.get(doc.id)
        if first is None or self.keep_duplicates:
            self._first.setdefault(doc.id, (origin, where))
            self.documents.append(doc)
            self.locations.append(where)
        elif first[0] != origin:
            self.skipped.append(SkippedFile(where, f"id {doc.id!r} already used by {first[1]}"))

    def covers(self, source: str) -> bool:
        """Whether a stored row from `source` should have been found again by this run (a text file read in
        full, or a file the walk of a folder visits: not hidden, outside anything unreadable). Looks up each of
        the source's parent folders in sets, so removing stale rows costs O(rows x depth), not O(rows x folders)."""
        unreadable, folders = self._covered_sets()
        parents = list(_parents(source))
        if source in unreadable or any(p in unreadable for p in parents):
            return False
        if source in self.files_read:
            return True
        # the walk leaves out names starting with '.' (files and folders) below each folder it was given
        return any(p in folders and not any(part.startswith(".") for part in source[len(p) + 1:].split("/"))
                   for p in parents)

    def _covered_sets(self) -> tuple[frozenset[str], frozenset[str]]:
        """The unreadable and walked folders without a trailing '/' ('/' itself becomes ''), rebuilt only when the
        lists have grown."""
        key = (len(self.unreadable), len(self.folders))
        if self._sets is None or self._sets[0] != key:
            self._sets = (key, frozenset(u.rstrip("/") for u in self.unreadable) | frozenset(self.unreadable),
                          frozenset(f.rstrip("/") for f in self.folders))
        return self._sets[1], self._sets[2]


def _parents(path: str) -> Iterator[str]:
    """'/a/b/c.png' -> '/a/b', '/a', '' (the root, as '/'.rstrip('/') gives it)."""
    end = len(path)
    while (end := path.rfind("/", 0, end)) >= 0:
        yield path[:end]


def _rel_folder(path: Path, root: Optional[Path]) -> str:
    if root is None:
        return ""
    rel = path.parent.relative_to(root).as_posix()
    return "" if rel == "." else rel


def _walk(root: Path, out: Discovery) -> Iterator[Path]:
    """Files under root, sorted, hidden files and folders left out; symlinked folders not followed; a folder
    that cannot be listed, or a symlinked one, is reported (and its stored rows kept)."""
    def unlistable(err: OSError) -> None:
        where = err.filename if err.filename is not None else root
        out.skipped.append(SkippedFile(str(where), f"folder not readable: {err.strerror or err}"))
        out.unreadable.append(safe_str(os.fspath(where)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in dirnames:
            link = os.path.join(dirpath, name)
            if os.path.islink(link):  # os.walk does not descend into it: its stored rows are kept, not removed
                out.skipped.append(SkippedFile(link, "symlinked folder, not followed"))
                out.unreadable.append(safe_str(link))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def source_path(path: Path) -> str:
    """The absolute path an image row records as its source: folders resolved, a symlinked file named as the
    link (so the row goes when the link goes; the row's id and `image` are the target's)."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.replace(";", ",").split(",") if t.strip())
    if isinstance(value, (list, tuple)):
        return tuple(str(t) for t in value if str(t).strip())
    raise ValueError(f"tags must be a list or a comma-separated string, got {type(value).__name__}")


def _row_document(path: Path, source: str, data: dict[str, Any], opts: TextOptions, folder: str, seen: Counter) -> Document:
    """One row of a text file as a document; `source` is the file's resolved path (resolved once per file)."""
    fields = (opts.text_field,) if opts.text_field else TEXT_FIELDS
    name = next((f for f in fields if f in data), None)
    if name is None:
        raise ValueError(f"no text field (looked for {', '.join(fields)}; found {', '.join(map(str, data)) or 'none'})")
    text = data[name]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"field {name!r} is empty or not a string")
    if problem := unicode_problem(text):
        raise ValueError(f"field {name!r} {problem}")
    image = data.get("image")
    if image:
        image = str((path.parent / str(image)).resolve())
    own_id = data.get("id")
    if own_id in (None, ""):  # identified by its text: the n-th row of this file with it
        digest = sha1_hex(text.encode("utf-8"))
        seen[digest] += 1
        own_id = text_id(source, f"text:{digest}#{seen[digest]}")
    return Document(
        id=str(own_id),
        kind="text",
        text=text,
        image=image or None,
        source=source,
        folder=folder,
        language=str(data.get("language") or data.get("lang") or opts.language or "") or None,
        tags=opts.tags + _tags(data.get("tags")),
        meta={k: v for k, v in data.items() if k not in _RESERVED and k != name},
    )


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed row) for txt / CSV / TSV / JSONL; a JSON error yields the exception."""
    ext = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as fh:  # -sig: a byte-order mark (Excel's "CSV UTF-8") is dropped
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


@dataclass
class TextFile:
    """What one text file gave: its rows (with their line numbers), the rows skipped, whether it was read."""

    rows: list[tuple[int, Document]] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    read: bool = True  # False: the file itself could not be read (one SkippedFile says why)
    source: str = ""  # the file's resolved path, its rows' `source`

    @property
    def documents(self) -> list[Document]:
        return [d for _, d in self.rows]


def read_text_file(path: Path, opts: TextOptions, folder: str = "") -> TextFile:
    """The rows of a .txt / CSV / TSV / JSONL file as documents, and what was skipped (a row, or the file)."""
    out = TextFile(source=str(path.resolve()))  # resolved once, not once per row
    seen: Counter[str] = Counter()
    text_opts = opts if path.suffix.lower() not in TEXT_EXTS else TextOptions(None, opts.language, opts.tags)
    try:
        for lineno, data in _rows(path):
            where = f"{path}:{lineno}"
            if isinstance(data, Exception):
                out.skipped.append(SkippedFile(where, f"not valid JSON ({data.msg})"))
            elif not isinstance(data, dict):
                out.skipped.append(SkippedFile(where, f"expected an object, got {type(data).__name__}"))
            else:
                try:
                    out.rows.append((lineno, _row_document(path, out.source, data, text_opts, folder, seen)))
                except ValueError as err:
                    out.skipped.append(SkippedFile(where, str(err)))
    except UnicodeDecodeError as err:
        return TextFile([], [SkippedFile(str(path), f"not UTF-8 text ({err.reason} at byte {err.start})")], read=False)
    except (OSError, csv.Error) as err:
        return TextFile([], [SkippedFile(str(path), f"unreadable: {err}")], read=False)
    return out


def image_document(path: Path, opts: TextOptions, folder: str = "") -> Document:
    """An image file's row: id and `image` from the file it is (a symlink resolved), `source` the path found."""
    target = path.resolve()
    return Document(
        id=image_id(target), kind="image", text=path.stem.replace("_", " "), image=str(target),
        source=source_path(path), folder=folder, tags=opts.tags,
    )


def _dangling(path: Path) -> Optional[str]:
    """Why a symlink cannot be followed (a loop, a missing target), or None for anything else."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop: following the link never reaches a file"
        if err.errno == errno.ENOENT:
            return f"broken symlink: its target {os.readlink(path)} does not exist"
        return f"symlink target unreadable: {err.strerror or err}"


def _file(path: Path, root: Optional[Path], opts: TextOptions, out: Discovery) -> None:
    ext = path.suffix.lower()
    problem = _dangling(path)
    if problem:  # perhaps a drive not mounted now: the link's stored row is kept, not removed
        out.skipped.append(SkippedFile(str(path), problem))
        out.unreadable.append(safe_str(source_path(path)))
        return
    folder = _rel_folder(path, root)
    if ext in IMAGE_EXTS:
        doc = image_document(path, opts, folder)
        out.add(doc, (doc.image or "", ""), str(path))
    elif ext in TEXT_EXTS | TABLE_EXTS | JSONL_EXTS:
        found = read_text_file(path, opts, folder)
        source = found.source or str(path.resolve())  # a text file's rows are its target's (a link to it adds nothing)
        for lineno, doc in found.rows:
            out.add(doc, (source, str(lineno)), f"{path}:{lineno}")
        out.skipped += found.skipped
        if found.read and not found.skipped:
            out.files_read.add(safe_str(source))
        else:  # a skipped row may be any stored row of the file (which one cannot be told): keep them all this run
            out.unreadable.append(safe_str(source))
    else:
        out.skipped.append(SkippedFile(str(path), f"unsupported file type {ext or '(none)'}; "
                                                  f"supported: {', '.join(sorted(SUPPORTED))}"))


def discover(paths: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], opts: TextOptions = TextOptions(),
             *, keep_duplicates: bool = False) -> Discovery:
    """All documents under `paths` (one path, or several; folders are walked recursively), plus what was
    skipped and why. The same file under two given paths gives its rows once."""
    out = Discovery(keep_duplicates=keep_duplicates)
    for p in one_or_many(paths, "paths"):
        path = Path(p).expanduser()
        try:
            if path.is_dir():
                root = path.resolve()
                out.folders.append(safe_str(str(root)))
                for f in _walk(root, out):
                    try:
                        _file(f, root, opts, out)
                    except (OSError, RuntimeError) as err:  # e.g. a loop in a folder above: this file only
                        out.skipped.append(SkippedFile(str(f), f"unreadable: {err}"))
            elif path.is_file():
                _file(path, None, opts, out)
            else:
                out.skipped.append(SkippedFile(str(path), _dangling(path) or "does not exist"))
        except (OSError, RuntimeError) as err:
            out.skipped.append(SkippedFile(str(path), f"unreadable: {err}"))
    return out
