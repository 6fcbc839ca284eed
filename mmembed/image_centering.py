"""Image centering: remove part of the direction every image embedding shares before ranking.

After cross-modal training the image embeddings of this model sit in a narrow cone: the mean of
600 unit-length training-image embeddings has norm 0.73 (shipped model, session 21). A caption close
to that shared direction scores high against every picture and becomes a hub: on the ten test
photos the Swahili caption for "hot beverage" is the best caption of four unrelated photos. This is
the "modality gap" of contrastive models (Liang et al., NeurIPS 2022). Subtracting part of the mean

    embedding = normalize(e_image - weight * mean)       e_image, mean: (D,)

keeps what tells one image from another. `mean` is a buffer saved with the model, fitted on training
images with the centering off (`fit_image_centering`; the trainer refits it before dev scoring and
export, since it depends on the trained image side). Text embeddings are not changed: centering the
text side too lost on the dev sets (session 21, the adapter card).
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn

from .config import ImageCenteringConfig

if TYPE_CHECKING:
    from .model import MMEmbedModel


class ImageCentering(nn.Module):
    def __init__(self, cfg: ImageCenteringConfig, dim: int):
        super().__init__()
        if not 0.0 <= cfg.weight <= 1.0:
            raise ValueError(f"image_centering.weight must be in [0, 1], got {cfg.weight}")
        if cfg.fit_images < 2:
            raise ValueError(f"image_centering.fit_images must be >= 2, got {cfg.fit_images}")
        self.cfg = cfg
        self.register_buffer("mean", torch.zeros(dim))  # (D,), filled by fit_image_centering

    def forward(self, image_emb: torch.Tensor) -> torch.Tensor:
        """(n, D) L2-normalized image embeddings -> (n, D) L2-normalized, centered."""
        shift = (self.cfg.weight * self.mean).to(image_emb.device, image_emb.dtype)
        return nn.functional.normalize(image_emb - shift, dim=-1)


def fit_image_centering(model: "MMEmbedModel", images: Sequence, *, seed: int = 0, batch_size: int = 32) -> int:
    """Set the model's centering mean to the mean embedding of up to `cfg.fit_images` of `images`
    (a seeded sample of paths or PIL images; pass each image once), embedded with the centering off. Returns how
    many were used."""
    centering = model.image_centering
    if centering is None:
        raise ValueError(f"model {model.name!r} has no image centering to fit (config.image_centering is None)")
    images = list(images)
    if len(images) < 2:
        raise ValueError(f"fitting the image centering needs at least 2 images, got {len(images)}")
    sample = random.Random(seed).sample(images, min(centering.cfg.fit_images, len(images)))
    model.image_centering = None  # the mean of uncentered embeddings
    try:
        emb = model.encode_image(sample, batch_size=batch_size, as_tensor=True)  # (n, D)
    finally:
        model.image_centering = centering
    centering.mean.copy_(emb.float().mean(dim=0).to(centering.mean.device))
    return len(sample)
