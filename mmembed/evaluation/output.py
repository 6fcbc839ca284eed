"""Where `mmembed eval` writes: checked before any model loads, written so a folder never mixes runs.

The command owns a fixed set of file names in `--out` (results.json, run.json and the plots); it
removes those before writing, so a run with fewer tasks or `--no-plots` leaves no stale plot of an
earlier run beside its results, and it touches nothing else in the folder. Every file is written to
a temporary name and renamed into place; results.json goes last, so its presence means the run
finished writing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..paths import OutputPathError, check_writable_folder, nearest_existing, write_text_atomically
from .tasks import TASK_KINDS

RESULTS_FILE = "results.json"
RUN_FILE = "run.json"
HEATMAP_FILE = "similarity_heatmap.png"


def plot_file(task: str) -> str:
    return f"{task}_by_language.png"


def owned_files() -> list[str]:
    """Every file name this command writes into --out (whatever tasks and options a run has)."""
    return [RESULTS_FILE, RUN_FILE, *(plot_file(t) for t in TASK_KINDS), HEATMAP_FILE]


def check_out(out: Path) -> None:
    """Refuse an --out that cannot be written: a file, below a file, not writable, or holding a folder
    (or other non-file) where one of our files goes. Creates nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"--out {out} is a file, not a folder; give a folder for {RESULTS_FILE}, {RUN_FILE} "
                              "and the plots")
    existing = nearest_existing(out, "--out")  # where the new folders would be made
    if not existing.is_dir():
        raise OutputPathError(f"--out {out}: {existing} is not a folder, so no folder can be made in it")
    check_writable_folder(existing, "--out", out)
    if out.is_dir():
        for name in owned_files():
            p = out / name
            if (p.exists() or p.is_symlink()) and not p.is_file():
                raise OutputPathError(f"--out {out}: {p} is {'a folder' if p.is_dir() else 'not a regular file'}; "
                                      f"this command writes its {name} there (move it away)")


def clear_outputs(out: Path) -> list[Path]:
    """Remove the files an earlier run of this command wrote into `out` (only those names)."""
    removed = []
    for name in owned_files():
        p = Path(out) / name
        if p.is_file() or p.is_symlink():
            p.unlink()
            removed.append(p)
    return removed


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    return write_text_atomically(path, json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
