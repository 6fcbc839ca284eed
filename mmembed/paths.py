"""Checks on the output paths users give, run before any slow work so a bad path fails at once."""
from __future__ import annotations

import os
from pathlib import Path


def check_output_file(option: str, path: Path) -> None:
    """Refuse a file output path that cannot be written: a folder, a path below a file, a file or folder without
    write permission. Creates nothing. ValueError names the option and the path."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
            if path.exists() and not os.access(path, os.W_OK):
                raise ValueError(f"{option} {path}: the file is not writable (permission denied)")
            if not path.exists() and not os.access(parent, os.W_OK):
                raise ValueError(f"{option} {path}: cannot write in {parent} (permission denied)")
            return
