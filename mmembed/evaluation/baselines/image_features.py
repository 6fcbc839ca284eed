"""The "image features" baseline for image -> image search: what one gets with the image tower alone.

image -> EfficientNet-Lite0 (packaged ImageNet-1k weights) -> global-average-pooled features (1280; the features the
feature read-out reads, feature_readout.pooled_features) -> unit length.
No text side: it is scored on image -> image tasks (i2i) and skipped, with a note, on tasks that need text.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..tasks import Role


class ImageFeatureEncoder:
    name = "image-features"
    modalities = frozenset({"image"})

    def __init__(self, batch_size: int = 32):
        from mmembed.config import ImageTowerConfig
        from mmembed.vision import create_image_tower

        self.tower_cfg = ImageTowerConfig()  # the packaged EfficientNet-Lite0, as mmembed models use it
        self.tower = create_image_tower(self.tower_cfg).eval()
        self.batch_size = batch_size

    def encode_text(self, texts: Sequence[str], role: Role) -> np.ndarray:
        raise NotImplementedError("image-features embeds images only")  # the runner skips text tasks first

    def encode_images(self, paths: Sequence[str], role: Role = "document") -> np.ndarray:
        import torch

        from mmembed.encoding import appearance_rows
        from mmembed.images import images_to_tensor

        cfg, out = self.tower_cfg, []
        with torch.inference_mode():
            for s in range(0, len(paths), self.batch_size):
                pixels = images_to_tensor(paths[s : s + self.batch_size], cfg.image_size, cfg.mean, cfg.std, s)
                # (b, 1280) unit rows: the pooled features the read-out reads, as a collection's appearance column
                out.append(appearance_rows(self.tower.forward_features(pixels)).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1280), np.float32)

    def describe(self) -> dict[str, Any]:
        return {"kind": "baseline", "dim": 1280,
                "description": "EfficientNet-Lite0 pooled ImageNet features (images only: image -> image tasks)"}
