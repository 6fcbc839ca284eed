"""Appearance: the image tower's own pooled features, a second channel for image -> image search.

The shared embedding space is fitted to captions, so it places a picture by what it shows; two drawings of one thing
in different hands can still land apart, and the tower's own features (what its ImageNet head reads) tell them apart
better. Neither channel alone is best: on emoji-styles dev (126 held-out emoji, outline drawing -> colour emoji, the
default model) the embedding alone finds the right emoji first for 22.2%, the tower features alone 31.7%, and the
fused score 34.9% (session 41; the README's "Image -> image" paragraph).

    appearance (n, C) = normalize(mean over h, w of the tower's feature map)       C = 1280 for EfficientNet-Lite0
    score      (q, n) = (1 - w) * cos(embeddings) + w * cos(appearances)          image queries x image documents

Texts have no appearance: the fused score ranks images against images only (a search over texts and images uses the
cosine). `encode_appearance` needs the image tower alone, not a trained projector.

Importing this module is cheap (numpy only): the eval and search layers read DEFAULT_APPEARANCE_WEIGHT from it.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from .model import MMEmbedModel

DEFAULT_APPEARANCE_WEIGHT = 0.5  # chosen on emoji-styles dev (0.5 and 0.6 tie at R@1 34.9; 0.5 has R@10 68.3 vs 65.9)


def check_appearance_weight(weight) -> float:
    """`weight` as a float in [0, 1] (0: the embedding's cosine alone, 1: the tower features alone), or a ValueError."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)) or not 0 <= weight <= 1 \
            or math.isnan(weight):
        raise ValueError(f"appearance_weight must be a number in [0, 1] (0: the embedding alone; "
                         f"{DEFAULT_APPEARANCE_WEIGHT} is the tuned value), got {weight!r}")
    return float(weight)


def fuse_appearance(cosine: np.ndarray, appearance_cosine: np.ndarray, weight: float) -> np.ndarray:
    """(q, n) embedding cosines and (q, n) appearance cosines -> (q, n) fused scores (1 - w) * cos + w * app."""
    weight = check_appearance_weight(weight)
    if np.shape(cosine) != np.shape(appearance_cosine):
        raise ValueError(f"cosine {np.shape(cosine)} and appearance cosine {np.shape(appearance_cosine)} differ in shape")
    return (1.0 - weight) * np.asarray(cosine, np.float32) + weight * np.asarray(appearance_cosine, np.float32)


def appearance_dim(model: "MMEmbedModel") -> int:
    """C: the length of an appearance vector (the tower's feature channels)."""
    from .vision import tower_channels

    if model.image_tower is None:
        raise RuntimeError(f"model {model.name!r} has no image tower, so images have no appearance features")
    return tower_channels(model.image_tower)


def encode_appearance(model: "MMEmbedModel", images: Sequence, *, batch_size: int = 32,
                      progress: Optional[bool] = None) -> np.ndarray:
    """(n, C) float32 unit rows: each image's pooled tower features, in input order. Images are what encode_image
    takes (paths, PIL images, arrays); a bad one raises ImageInputError naming its index. (The tower alone; an image
    that is embedded too gets both from one pass: encoding.encode_image_and_appearance.)"""
    import torch
    from tqdm.auto import tqdm

    from .encoding import AUTO_PROGRESS_MIN_ITEMS, EncodeInputError, _check_images, appearance_rows, is_int

    images = _check_images(images)
    dim = appearance_dim(model)
    if not is_int(batch_size) or batch_size < 1:
        raise EncodeInputError(f"batch_size must be a positive int, got {batch_size!r}")
    show = len(images) >= AUTO_PROGRESS_MIN_ITEMS if progress is None else bool(progress)
    batch_size = int(batch_size)
    out = np.zeros((len(images), dim), dtype=np.float32)
    tower = model.image_tower
    was_training = tower.training
    tower.eval()  # batch norm on its running statistics, as encode_image
    try:
        with torch.inference_mode():
            for s in tqdm(range(0, len(images), batch_size), desc=f"appearance ({model.name})", unit="batch",
                          disable=not show):
                pixels = model.pixels(images[s : s + batch_size], start_index=s)  # (b, 3, size, size)
                rows = appearance_rows(model.image_features(pixels))  # (b, C)
                out[s : s + len(rows)] = rows.numpy()
    finally:
        tower.train(was_training)
    return out
