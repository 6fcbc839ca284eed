"""Line-by-line reading of UTF-8 JSONL files, the one reader behind manifests and custom training pairs.

Each non-blank line is parsed on its own, so one bad line is named by its number and the rest still read.
A leading UTF-8 byte-order mark (Excel, Notepad) is dropped. A line that is not UTF-8 or not JSON comes back
with a `problem` instead of raising: the caller decides whether that stops the file or skips the line.
"""
from __future__ import annotations

import codecs
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True)
class JsonLine:
    lineno: int  # 1-based
    value: Any = None  # the parsed JSON value; None when `problem` is set
    problem: str = ""  # why the line is unusable ("not UTF-8 (...)", "not valid JSON (...)")


def not_utf8(data: bytes, err: UnicodeDecodeError, at: str = "column") -> str:
    """'not UTF-8 (byte 0xe9 at column 15); save the file as UTF-8' for a failed decode of `data`."""
    return f"not UTF-8 (byte 0x{data[err.start]:02x} at {at} {err.start + 1}); save the file as UTF-8"


def read_jsonl(path: str | os.PathLike) -> Iterator[JsonLine]:
    """Every non-blank line of the file at `path`, parsed (see the module docstring)."""
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield JsonLine(lineno, problem=not_utf8(raw, err))
                continue
            if not line.strip():
                continue
            try:
                yield JsonLine(lineno, json.loads(line))
            except json.JSONDecodeError as err:
                yield JsonLine(lineno, problem=f"not valid JSON ({err.msg} at column {err.colno})")
