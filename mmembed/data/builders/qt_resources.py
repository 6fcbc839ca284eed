"""Readers for the two Qt file formats GCompris ships its data in.

- `.rcc` (Qt resource bundle): a tree of files, each stored raw or zlib-compressed; GCompris packs
  one per activity (pictures, QML boards, README license notes).
- `.qm` (Qt translation catalog): `qsTr("...")` source strings and their translation, one catalog
  per locale.

Layouts follow Qt's own writers (qtbase `src/tools/rcc/rcc.cpp`, qttools `src/linguist/shared/qm.cpp`).
No Qt binding is needed to read data files, and none is among our dependencies.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

RCC_MAGIC = b"qres"
QM_MAGIC = bytes.fromhex("3cb86418caef9c95cd211cbf60a1bddd")

_RCC_DIRECTORY, _RCC_ZLIB, _RCC_ZSTD = 0x02, 0x01, 0x04
_QM_MESSAGES = 0x69
_QM_END, _QM_TRANSLATION, _QM_OBSOLETE1 = 1, 3, 5
_QM_SOURCE, _QM_CONTEXT, _QM_COMMENT = 6, 7, 8


class QtFormatError(ValueError):
    """A file is not the Qt format it should be, or is truncated; the message names the file."""


def _u32(data: bytes, at: int, path: Path) -> int:
    if at + 4 > len(data):
        raise QtFormatError(f"{path}: truncated at byte {at}")
    return struct.unpack_from(">I", data, at)[0]


def read_rcc(path: str | Path) -> dict[str, bytes]:
    """Every file in a Qt resource bundle: {'/gcompris/src/.../tiger.webp': bytes}, tree order."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != RCC_MAGIC:
        raise QtFormatError(f"{path}: not a Qt resource file (no 'qres' header)")
    version, tree, payload, names = (_u32(data, 4 + 4 * i, path) for i in range(4))
    node_size = 14 if version == 1 else 22  # version 2 added an 8-byte modification time

    def name_at(offset: int) -> str:
        at = names + offset
        (length,) = struct.unpack_from(">H", data, at)
        return data[at + 6:at + 6 + 2 * length].decode("utf-16-be")  # skip length and 4-byte hash

    files: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        at = tree + index * node_size
        if at + 14 > len(data):
            raise QtFormatError(f"{path}: node {index} lies past the end of the file")
        name_offset, flags = struct.unpack_from(">IH", data, at)
        name = name_at(name_offset) if index else ""
        if flags & _RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", data, at + 6)
            child_prefix = f"{prefix}{name}/" if index else "/"
            stack.extend((first + i, child_prefix) for i in reversed(range(count)))
            continue
        offset = payload + _u32(data, at + 10, path)
        size = _u32(data, offset, path)
        blob = data[offset + 4:offset + 4 + size]
        if flags & _RCC_ZSTD:
            raise QtFormatError(f"{path}: {prefix}{name} is zstd-compressed, which this reader does not handle")
        if flags & _RCC_ZLIB:
            blob = zlib.decompress(blob[4:])  # qCompress: 4-byte big-endian size, then zlib
        files[prefix + name] = blob
    return files


def read_qm(path: str | Path) -> dict[tuple[str, str], str]:
    """A Qt translation catalog: {(context, source text): translation}. Messages without a stored
    source text or with an empty translation are left out (they translate nothing)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:16] != QM_MAGIC:
        raise QtFormatError(f"{path}: not a Qt translation file (.qm magic missing)")
    at, messages = 16, b""
    while at < len(data):
        tag, length = data[at], _u32(data, at + 1, path)
        if tag == _QM_MESSAGES:
            messages = data[at + 5:at + 5 + length]
        at += 5 + length
    out: dict[tuple[str, str], str] = {}
    at, source, context, translations = 0, None, "", []
    while at < len(messages):
        tag = messages[at]
        at += 1
        if tag == _QM_END:
            if source and translations and translations[0]:
                out[(context, source)] = translations[0]
            source, context, translations = None, "", []
        elif tag == _QM_TRANSLATION:
            length = _u32(messages, at, path)
            at += 4
            if length != 0xFFFFFFFF:  # a null translation
                translations.append(messages[at:at + length].decode("utf-16-be"))
                at += length
        elif tag in (_QM_SOURCE, _QM_CONTEXT, _QM_COMMENT):
            length = _u32(messages, at, path)
            text = messages[at + 4:at + 4 + length].decode("utf-8", errors="replace")
            at += 4 + length
            if tag == _QM_SOURCE:
                source = text
            elif tag == _QM_CONTEXT:
                context = text
        elif tag == _QM_OBSOLETE1:
            at += 4  # a 4-byte field that Qt's own reader skips
        else:
            raise QtFormatError(f"{path}: unknown message tag {tag} at byte {at - 1} of the messages")
    return out
