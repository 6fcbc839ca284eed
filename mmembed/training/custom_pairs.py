"""A user's own training pairs (`mmembed train --pairs`): my.jsonl | my.csv / my.tsv | a folder of images.

- JSONL: one object a line, `{"image": ..., "caption": ...}` or `{"query": ..., "positive": ..., "negative": ...}`.
- CSV / TSV: a header line naming those columns (any case, spaces around names ignored; a .csv may be
  delimited by ',', ';' or a tab). A header that names no such pair is refused before any row is read.
- A folder: every image under it, captioned by its sidecar NAME.txt, else by its file name.

Files are UTF-8 (a BOM, as Excel writes it, is fine). A relative image path in a JSONL / CSV is resolved
against the folder that file is in, and a message about it shows the path tried.

Every bad row (missing or unreadable image, empty or non-text field, bytes that are not UTF-8, a CSV
row with more or fewer fields than its header, ...) is reported as `file:line: reason` and skipped,
or the whole input is rejected with `on_error="reject"`. When no row is usable, the error lists them.

Pairs that share an image file or a text (anchor or positive) share one concept: a batch draws at most
one pair per concept, so two captions of one image are never each other's in-batch negatives.
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional

from ..data.jsonl import not_utf8, read_jsonl
from ..tokenizer import unicode_problem
from .pairs import IMAGE_SUFFIXES, PairsError, RowProblem, TrainPair

IMAGE_KEYS = ("image", "image_path", "path")
ANCHOR_KEYS = ("query", "anchor", "text")  # "text" is the caption of a row that has an image
POSITIVE_KEYS = ("caption", "positive", "text2")
NEGATIVE_KEYS = ("negative", "hard_negative")
EXPECTED = "expected columns image+caption, or query+positive[+negative]"
MAX_LISTED = 20


@dataclass(frozen=True)
class RawRow:
    """One row as read, before it is checked: its fields under lower-cased names, or what made it unreadable."""

    where: str  # "file:line" (for a folder: the image's path)
    base: Path  # the folder a relative image path is resolved against
    fields: dict[str, object] = field(default_factory=dict)
    problem: Optional[str] = None


def load_custom_pairs(
    path: str | Path, *, on_error: Literal["skip", "reject"] = "skip", check_images: bool = True
) -> tuple[list[TrainPair], list[RowProblem]]:
    """Read my.jsonl | my.csv | image_folder/ -> (pairs, problems). See the module docstring."""
    path = Path(path)
    if not path.exists():
        raise PairsError(f"{path} does not exist")
    if path.is_dir():
        rows = _folder_rows(path)
    elif path.suffix.lower() == ".jsonl":
        rows = _jsonl_rows(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        rows = _csv_rows(path)
    else:
        raise PairsError(f"{path}: expected a .jsonl, .csv/.tsv file or a folder of images")
    pairs: list[TrainPair] = []
    problems: list[RowProblem] = []
    for row in rows:
        pair, why = (None, row.problem) if row.problem else _row_to_pair(row, check_images)
        if pair is None:
            problems.append(RowProblem(row.where, why or "unusable row"))
        else:
            pairs.append(pair)
    if problems and on_error == "reject":
        raise PairsError(f"{len(problems)} bad row(s) in {path} (on_error=reject):\n{_listing(problems)}")
    if not pairs:
        raise PairsError(f"{path} has no usable pairs ({len(problems)} bad rows)"
                         + (f":\n{_listing(problems)}" if problems else ""))
    return share_concepts(pairs), problems


def _listing(problems: list[RowProblem]) -> str:
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return "\n".join(f"  {p}" for p in problems[:MAX_LISTED]) + more


def share_concepts(pairs: list[TrainPair]) -> list[TrainPair]:
    """Pairs linked by a shared image file (resolved) or a shared text (anchor or positive, either side) get one
    concept, named by the first such pair's place, so the sampler puts at most one of them in a batch."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(key: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys = []
    for p in pairs:
        anchor = ("image", os.path.realpath(p.image)) if p.image is not None else ("text", (p.text or "").strip())
        mine = [anchor, ("text", p.positive.strip())]
        keys.append(mine)
        first = find(mine[0])
        for key in mine[1:]:
            if (root := find(key)) != first:
                parent[root] = first
    names: dict[tuple[str, str], str] = {}
    return [dataclasses.replace(p, concept=names.setdefault(find(k[0]), p.concept)) for p, k in zip(pairs, keys)]


# ---- readers: file -> RawRow ----------------------------------------------------------------

def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    for line in read_jsonl(path):
        where, row = f"{path}:{line.lineno}", line.value
        if line.problem:
            yield RawRow(where, path.parent, problem=line.problem)
            continue
        if not isinstance(row, dict):
            yield RawRow(where, path.parent, problem=f"expected a JSON object, got {type(row).__name__}")
            continue
        names = [str(k).strip().lower() for k in row]
        if dups := sorted({n for n in names if names.count(n) > 1}):
            yield RawRow(where, path.parent, problem=f"fields {dups} given twice (names differ only in case or spaces)")
            continue
        yield RawRow(where, path.parent, {n: v for n, v in zip(names, row.values()) if v is not None})


def _delimiter(path: Path, header_line: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    return "," if counts[","] or not max(counts.values()) else max(counts, key=lambda d: counts[d])


def _csv_rows(path: Path) -> Iterator[RawRow]:
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    # undecodable bytes become lone surrogates here, found per row below (csv has no escapes that make them)
    text = data.decode("utf-8", errors="surrogateescape")
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = _delimiter(path, first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: Optional[list[str]] = None
    end = 0  # the line the previous record ended on: a record starts on the next one
    for record in reader:
        start, end = end + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # a blank line, or one of only delimiters: no data
        where = f"{path}:{start}"
        if header is None:
            header = _check_header(record, where, delimiter)
            continue
        if len(record) != len(header):
            hint = " (quote a field that holds the delimiter)" if len(record) > len(header) else ""
            yield RawRow(where, path.parent, problem=f"{len(record)} fields, header has {len(header)}{hint}")
            continue
        if bad := next((cell for cell in record if _SURROGATE.search(cell)), None):
            byte = ord(_SURROGATE.search(bad).group()) - 0xDC00  # type: ignore[union-attr]
            yield RawRow(where, path.parent, problem=f"not UTF-8 (byte 0x{byte:02x}); save the file as UTF-8")
            continue
        yield RawRow(where, path.parent, {name: cell for name, cell in zip(header, record) if cell.strip()})
    if header is None:
        raise PairsError(f"{path}: empty file: expected a header line ({EXPECTED}) and rows")


_SURROGATE = re.compile("[\udc80-\udcff]")


def _check_header(record: list[str], where: str, delimiter: str) -> list[str]:
    if any(_SURROGATE.search(cell) for cell in record):
        raise PairsError(f"{where}: header is not UTF-8; save the file as UTF-8 ({EXPECTED})")
    names = [cell.strip().lower() for cell in record]
    found = f"found {record!r} (delimiter {delimiter!r}); {EXPECTED}, in a first line that names them"
    if dups := sorted({n for n in names if n and names.count(n) > 1}):
        raise PairsError(f"{where}: header names {dups} twice; {found}")
    known = [n for n in names if n in IMAGE_KEYS + ANCHOR_KEYS + POSITIVE_KEYS + NEGATIVE_KEYS]
    has_image = any(n in IMAGE_KEYS for n in names)
    has_query = any(n in ANCHOR_KEYS for n in names)
    has_positive = any(n in POSITIVE_KEYS for n in names)
    if not known:
        raise PairsError(f"{where}: header has no image/caption/query column; {found}")
    if not (has_positive and (has_image or has_query)) and not (has_image and "text" in names):
        raise PairsError(f"{where}: header columns {known} make no pair (an image needs a caption, a query a "
                         f"positive); {found}")
    return names


def _folder_rows(folder: Path) -> Iterator[RawRow]:
    for img in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        image = os.path.abspath(img)  # rglob's paths already hold the folder: nothing to join it to again
        side = img.with_suffix(".txt")
        if not side.is_file():
            if _SURROGATE.search(img.stem):  # a file name in another encoding (os.fsdecode's escapes)
                yield RawRow(str(img), folder, problem="file name is not valid UTF-8, so it cannot be the caption; "
                                                       f"write the caption into {side.name}")
            else:
                yield RawRow(str(img), folder, {"image": image, "caption": img.stem.replace("_", " ")})
            continue
        raw = side.read_bytes()
        try:
            caption = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            yield RawRow(str(img), folder, problem=f"caption file {side}: {not_utf8(raw, err, 'byte')}")
            continue
        if not caption.strip():
            yield RawRow(str(img), folder, problem=f"caption file {side} is empty")
            continue
        yield RawRow(str(img), folder, {"image": image, "caption": caption})


# ---- a row -> a pair ---------------------------------------------------------------------------

def _pick(fields: dict[str, object], keys: tuple[str, ...]) -> tuple[Optional[str], object, Optional[str]]:
    """-> (the field name used, its value, a problem): at most one of `keys` may be given."""
    given = [k for k in keys if k in fields]
    if len(given) > 1:
        return None, None, f"fields {given} name the same thing; keep one"
    return (given[0], fields[given[0]], None) if given else (None, None, None)


def _text_problem(name: str, value: object) -> Optional[str]:
    if not isinstance(value, str):
        return f"{name} must be a string, got {type(value).__name__} {repr(value)[:40]}"
    if not value.strip():
        return f"{name} is empty"
    problem = unicode_problem(value)
    return f"{name} {problem}" if problem else None


def _row_to_pair(row: RawRow, check_images: bool) -> tuple[Optional[TrainPair], Optional[str]]:
    fields = row.fields
    picked = {}
    for role, keys in (("image", IMAGE_KEYS), ("anchor", ANCHOR_KEYS), ("positive", POSITIVE_KEYS),
                       ("negative", NEGATIVE_KEYS)):
        key, value, why = _pick(fields, keys)
        if why:
            return None, why
        picked[role] = (key, value)
    (_, image), (anchor_key, anchor), (_, positive), (_, negative) = (
        picked["image"], picked["anchor"], picked["positive"], picked["negative"])
    if image is not None and anchor_key == "text" and positive is None:
        positive, anchor = anchor, None  # (image, text) rows may name the caption "text"
    if image is not None and anchor is not None:
        return None, f"has both an image and a {anchor_key!r} text: give one anchor (image or query) per row"
    if positive is None:
        return None, ("no caption/positive text" if image is not None or anchor is not None else
                      f"no image, caption, query or positive field (found {sorted(fields)})")
    if image is None and anchor is None:
        return None, "no anchor: give an image path or a query text"
    for name, value in (("positive", positive), ("query text", anchor), ("negative", negative)):
        if value is not None and (why := _text_problem(name, value)):
            return None, why
    img_path = None
    if image is not None:
        img_path, why = _resolve_image(image, row.base, check_images)
        if why:
            return None, why
    assert isinstance(positive, str)
    return TrainPair(positive.strip(), image=img_path, text=anchor, negative=negative,  # type: ignore[arg-type]
                     concept=row.where), None


_IMAGE_PREFIX = re.compile(r"^image #\d+ \(.*?\): ")  # images.open_image's prefix for a list of inputs


def _resolve_image(image: object, base: Path, check_images: bool) -> tuple[Optional[str], Optional[str]]:
    if not isinstance(image, str):
        return None, f"image must be a path string, got {type(image).__name__} {repr(image)[:40]}"
    if not image.strip():
        return None, "image path is empty"
    tried = Path(os.path.abspath(Path(base, image)))  # an absolute `image` stays as it is
    shown = f"image {image!r}" + ("" if str(tried) == image else f" (resolved to {tried})")
    if tried.is_dir():
        return None, f"{shown} is a folder, not an image file"
    if not tried.is_file():
        return None, f"{shown} does not exist"
    if check_images:
        from ..images import ImageInputError, open_image

        try:
            open_image(tried)
        except ImageInputError as err:
            return None, f"{shown}: {_IMAGE_PREFIX.sub('', str(err))}"
    return str(tried), None
