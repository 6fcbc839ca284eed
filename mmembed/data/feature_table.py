"""Feature tables: precomputed image-tower feature vectors stored in one safetensors file.

A manifest record whose anchor is a `FeatureRef` points at one row of a 2-D float tensor (n, c)
in such a file (e.g. the ImageNet class prototypes, one row per class). The file also carries the
row ids (`metadata["row_ids"]`, a JSON list, one id per row) so a row can be checked against the
record's concept without trusting positions alone. safetensors, not pickle: loading runs no code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import torch

from ..paths import write_atomically

ROW_IDS_KEY = "row_ids"


class FeatureTableError(ValueError):
    """A feature table is missing, unreadable or has the wrong shape; the message names the file."""


def write_feature_table(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], row_ids: Sequence[str],
                        metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write `tensors` (every 2-D one must have len(row_ids) rows) and the row ids to `path`."""
    from safetensors.torch import save_file

    path = Path(path)
    for name, t in tensors.items():
        if t.dim() == 2 and t.shape[0] != len(row_ids):
            raise ValueError(f"tensor {name!r} has {t.shape[0]} rows but {len(row_ids)} row ids were given")
    meta = dict(metadata or {}) | {ROW_IDS_KEY: json.dumps(list(row_ids))}
    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    return write_atomically(path, lambda tmp: save_file(contiguous, str(tmp), metadata=meta))


def read_row_ids(path: str | os.PathLike) -> list[str]:
    """The row ids stored with a feature table."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as err:  # safetensors raises its own SafetensorError / OSError / ValueError
        raise FeatureTableError(_unreadable(path, err)) from None
    if ROW_IDS_KEY not in meta:
        raise FeatureTableError(f"feature table {path} has no '{ROW_IDS_KEY}' metadata")
    return json.loads(meta[ROW_IDS_KEY])


def load_feature_table(path: str | os.PathLike, tensor: str, channels: Optional[int] = None) -> torch.Tensor:
    """The (n, c) float32 tensor `tensor` of file `path`; checks that it is 2-D, finite and (when
    `channels` is given) c == channels, so a table built for another tower fails here, by name."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FeatureTableError(f"feature table {path} does not exist (rebuild the dataset that references it)")
    try:
        with safe_open(str(path), framework="pt") as fh:
            if tensor not in fh.keys():
                raise FeatureTableError(f"feature table {path} has no tensor {tensor!r} (it has {sorted(fh.keys())})")
            table = fh.get_tensor(tensor)
    except FeatureTableError:
        raise
    except Exception as err:
        raise FeatureTableError(_unreadable(path, err)) from None
    if table.dim() != 2:
        raise FeatureTableError(f"feature table {path}: tensor {tensor!r} must be 2-D (rows, channels), got {tuple(table.shape)}")
    if channels is not None and table.shape[1] != channels:
        raise FeatureTableError(f"feature table {path}: tensor {tensor!r} has {table.shape[1]} channels, "
                                f"the image tower gives {channels}")
    table = table.float()
    if not torch.isfinite(table).all():
        raise FeatureTableError(f"feature table {path}: tensor {tensor!r} has NaN or infinite values")
    return table


def _unreadable(path: Path, err: Exception) -> str:
    return f"feature table {path} is not a readable safetensors file ({type(err).__name__}: {err})"
