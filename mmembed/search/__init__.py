"""Search: persistent collections on LanceDB, ingest (local or Ray), the CLI commands and the server.

Nothing heavy is imported here: `mmembed.search.Collection` loads LanceDB on first use.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Collection"]


def __getattr__(name: str) -> Any:
    if name == "Collection":
        from .collection import Collection

        return Collection
    raise AttributeError(f"module 'mmembed.search' has no attribute {name!r}")
