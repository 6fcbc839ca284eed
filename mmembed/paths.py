"""Writing files safely: checks on the output paths users give (run before any slow work, so a bad path fails at
once) and atomic writes (a temporary name beside the target, renamed over it), one implementation for every
command that writes."""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Callable

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask can only read by setting)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_mode(folder: bool = False) -> int:
    """The permission bits open() / mkdir() give a new file / folder. mkstemp, mkdtemp and safetensors give 0600 /
    0700 instead, which would hide a dataset, a model or results from the other users of a machine."""
    return (0o777 if folder else 0o666) & ~_umask()


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` writes the whole file at a temporary name beside `path` (same suffix, so writers that infer a
    format from it still can), which is then renamed over `path`. Readers see the old file or the whole new one; a
    failed or interrupted write leaves the old file and no temporary one. The file keeps the mode of the one it
    replaces, or gets the umask's default."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        mode = path.stat().st_mode & 0o7777 if path.is_file() else default_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def temp_dir_beside(final: str | os.PathLike, tag: str = "tmp") -> Path:
    """A new empty folder beside `final`, to be filled and then renamed onto it (same file system, so the rename is
    atomic). Made with the umask's folder mode, not mkdtemp's private 0700."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{tag}-", dir=final.parent))
    tmp.chmod(default_mode(folder=True))
    return tmp


class OutputPathError(ValueError):
    """An output path cannot be written; the message names the option, the path and why."""


def nearest_existing(path: Path, option: str) -> Path:
    """`path` itself or its nearest existing parent: where a new file or folder at `path` would be made."""
    existing = path.absolute()
    while not existing.exists():
        if existing.is_symlink():
            raise OutputPathError(f"{option} {path}: {existing} is a broken link")
        existing = existing.parent
    return existing


def check_writable_folder(folder: Path, option: str, path: Path) -> None:
    """Refuse unless a file can be created in `folder`. Tries it: os.access says yes to root even on a read-only
    file system."""
    if not folder.is_dir():
        raise OutputPathError(f"{option} {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".mmembed-write-check-"):
            pass
    except OSError as err:
        raise OutputPathError(f"{option} {path}: cannot write in {folder} ({err.strerror or err})") from None


def check_output_file(option: str, path: Path) -> None:
    """Refuse a file output path that cannot be written: a folder, a path below a file, a file or folder without
    write permission. Creates nothing. OutputPathError (a ValueError) names the option and the path."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{option} {path} is not a regular file")
    check_writable_folder(nearest_existing(path.parent, option), option, path)
    if path.is_file() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{option} {path}: the file is not writable (permission denied)")
