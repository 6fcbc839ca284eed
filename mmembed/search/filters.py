"""Metadata filters -> one SQL `where` string for LanceDB (DataFusion dialect).

Simple keyword filters (language, folder, tag, kind) are quoted here, so user values never
become SQL; a raw `where=` string is ANDed in as written, for anything the keywords cannot say.
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

from .documents import KINDS

Values = Union[str, Iterable[str], None]


def quote(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"filter values must be strings, got {type(value).__name__} ({value!r:.40})")
    return "'" + value.replace("'", "''") + "'"


def _as_list(values: Values) -> list[str]:
    if values is None:
        return []
    return [values] if isinstance(values, str) else list(values)


def _folder_clause(folder: str) -> str:
    folder = folder.strip("/")
    # a folder matches itself and everything below it
    return f"(folder = {quote(folder)} OR starts_with(folder, {quote(folder + '/')}))"


def build_where(
    where: Optional[str] = None,
    *,
    language: Values = None,
    folder: Values = None,
    tag: Values = None,
    kind: Optional[str] = None,
) -> Optional[str]:
    """AND of the given filters; a list means any of its values. None when nothing filters."""
    clauses: list[str] = []
    if where is not None and where.strip():
        clauses.append(f"({where})")
    langs = _as_list(language)
    if langs:
        clauses.append(f"language IN ({', '.join(quote(v) for v in langs)})")
    folders = _as_list(folder)
    if folders:
        clauses.append("(" + " OR ".join(_folder_clause(f) for f in folders) + ")")
    tags = _as_list(tag)
    if tags:
        clauses.append(f"array_has_any(tags, [{', '.join(quote(t) for t in tags)}])")
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        clauses.append(f"kind = {quote(kind)}")
    return " AND ".join(clauses) or None
