"""The "ImageNet-label caption" pipeline: what one can do with no image-text model at all.

image -> EfficientNet-Lite0 (packaged ImageNet-1k weights) -> top-5 class names -> one caption
("tabby, tabby cat; tiger cat; ...") -> multilingual-e5-small passage embedding. Texts go
through e5 as usual, so text -> image retrieval compares a query with the predicted labels.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..tasks import Role
from ...e5 import e5_embed, load_e5

TOP_K = 5


class ImageNetLabelEncoder:
    name = "imagenet-labels"
    modalities = frozenset({"text", "image"})

    def __init__(self, batch_size: int = 32, top_k: int = TOP_K):
        from timm.data import ImageNetInfo

        from mmembed.config import ImageTowerConfig
        from mmembed.vision import create_image_tower

        self.tower_cfg = ImageTowerConfig()  # the packaged EfficientNet-Lite0, its classifier head intact
        self.tower = create_image_tower(self.tower_cfg)
        self.info = ImageNetInfo()
        self.e5 = load_e5()
        self.batch_size = batch_size
        self.top_k = top_k

    def captions(self, paths: Sequence[str]) -> list[str]:
        """The top-k ImageNet class descriptions of each image, joined into one caption."""
        import torch

        from mmembed.images import images_to_tensor

        cfg = self.tower_cfg
        out: list[str] = []
        with torch.inference_mode():
            for s in range(0, len(paths), self.batch_size):
                pixels = images_to_tensor(paths[s : s + self.batch_size], cfg.image_size, cfg.mean, cfg.std, s)
                top = self.tower(pixels).topk(self.top_k, dim=-1).indices  # (b, k) class ids, best first
                out.extend("; ".join(self.info.index_to_description(int(i)) for i in row) for row in top)
        return out

    def encode_text(self, texts: Sequence[str], role: Role) -> np.ndarray:
        return e5_embed(self.e5, texts, role)

    def encode_images(self, paths: Sequence[str], role: Role = "document") -> np.ndarray:
        # the captions are embedded as passages in either role, as this baseline always has been
        return e5_embed(self.e5, self.captions(paths), "document")

    def describe(self) -> dict[str, Any]:
        return {"kind": "baseline", "dim": 384,
                "description": f"EfficientNet-Lite0 top-{self.top_k} ImageNet class names embedded by multilingual-e5-small"}
