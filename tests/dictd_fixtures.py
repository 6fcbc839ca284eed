"""Tiny dictd dictionaries (index + gzip data), the format of Debian's dict-freedict-* packages."""
from __future__ import annotations

import gzip
from pathlib import Path

from mmembed.data.builders.dictd import B64


def _b64(n: int) -> str:
    digits = ""
    while True:
        digits = B64[n % 64] + digits
        n //= 64
        if n == 0:
            return digits


def write_dictd(folder: Path, name: str, entries: list[tuple[str, str]], aliases: dict[str, str] = {}) -> Path:
    """A dictd dictionary (index + gzip data) of (index headword, entry text); `aliases` adds index words
    that point at another headword's entry."""
    data, index, where = b"", [f"00-database-short\t{_b64(0)}\t{_b64(0)}"], {}
    for head, text in entries:
        blob = text.encode("utf-8")
        where[head] = (len(data), len(blob))
        index.append(f"{head}\t{_b64(len(data))}\t{_b64(len(blob))}")
        data += blob
    for alias, target in aliases.items():
        index.append(f"{alias}\t{_b64(where[target][0])}\t{_b64(where[target][1])}")
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"{name}.dict.dz", "wb") as fh:
        fh.write(data)
    (folder / f"{name}.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    return folder / f"{name}.index"
