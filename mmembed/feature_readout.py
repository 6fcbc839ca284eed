"""Feature read-out: a second, direct path from the image tower's pooled features into the embedding space.

The main image path turns the tower's feature map into visual tokens that the LLM backbone reads. Trained with the
text side frozen, that path fits its own training pictures poorly: the shipped model (stage 29b) ranks the right
English emoji name first among 1,479 TRAIN emoji for 8.5% of them. A linear map from the tower's globally pooled
features (the vector its ImageNet head reads) to the same frozen text embeddings, fitted in seconds on cached
features, fits them (97%) and generalizes better to held-out emoji (session 35, the adapter card). So an image's
embedding takes both:

    pooled (n, C)    = mean of the tower's feature map over its h x w positions
    readout (n, D)   = normalize(W @ ((pooled - mu) / sigma) + b)       (or a one-hidden-layer MLP)
    embedding (n, D) = normalize(e_image + weight * readout)
    weight           = w, or w * (1 - top ImageNet probability) with the confidence gate
    w                = cfg.weight for an image that is a document (what an index holds), cfg.query_weight (if set)
                       for an image that is a query (its texts are ranked: image -> text, zero-shot labels)

Texts never pass through it, so every text embedding, and every index of texts, stays as it was. It applies to
images alone, as the label prior does (a fused image + caption input is left to the backbone). W, b, mu and sigma are
saved with the model; `mmembed.training.readout.fit_feature_readout` fits them against the model's own text
embeddings of the training captions (the trainer does it before dev scoring and export).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .config import FeatureReadoutConfig, ImageRole, role_weight


class FeatureReadout(nn.Module):
    def __init__(self, cfg: FeatureReadoutConfig, in_channels: int, dim: int):
        super().__init__()
        if cfg.weight < 0:
            raise ValueError(f"feature_readout.weight must be >= 0, got {cfg.weight}")
        if cfg.query_weight is not None and cfg.query_weight < 0:
            raise ValueError(f"feature_readout.query_weight must be >= 0 or None (None: weight), got {cfg.query_weight}")
        if cfg.hidden < 0:
            raise ValueError(f"feature_readout.hidden must be >= 0 (0: a linear map), got {cfg.hidden}")
        self.cfg = cfg
        # standardization of the pooled features, fitted with the map (their scales differ by channel)
        self.register_buffer("feature_mean", torch.zeros(in_channels))  # (C,)
        self.register_buffer("feature_std", torch.ones(in_channels))  # (C,)
        if cfg.hidden:
            self.map = nn.Sequential(nn.Linear(in_channels, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, dim))
        else:
            self.map = nn.Linear(in_channels, dim)
        # zero until fitted: an unfitted read-out adds nothing (normalize(0) = 0)
        last = self.map[-1] if cfg.hidden else self.map
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def read(self, pooled: torch.Tensor) -> torch.Tensor:
        """(n, C) pooled tower features -> (n, D) unit vectors in the embedding space (zero before fitting)."""
        x = (pooled.float() - self.feature_mean) / self.feature_std
        return nn.functional.normalize(self.map(x), dim=-1)

    def role_weight(self, role: ImageRole) -> float:
        """The weight before the gate for pictures in `role`: query_weight for queries when it is set, else weight."""
        return role_weight(self.cfg.weight, self.cfg.query_weight, role)

    def weights(self, n: int, logits: Optional[torch.Tensor], device: torch.device | str,
                role: ImageRole = "document") -> torch.Tensor:
        """(n, 1) the read-out's weight per picture: role_weight(role), times 1 - the top probability of the
        classifier's (n, K) `logits` with the confidence gate."""
        weight = torch.full((n, 1), self.role_weight(role), device=device)
        if self.cfg.confidence_gate:
            if logits is None:
                raise ValueError("feature_readout.confidence_gate needs the tower's classifier logits")
            weight = weight * (1 - logits.float().softmax(dim=-1).amax(dim=-1, keepdim=True)).to(device)
        return weight

    def forward(self, image_emb: torch.Tensor, feature_maps: torch.Tensor,
                logits: Optional[torch.Tensor] = None, role: ImageRole = "document") -> torch.Tensor:
        """(n, D) L2-normalized image embeddings, (n, C, h, w) the tower's feature maps and, for the confidence
        gate, (n, K) its classifier's logits -> (n, D) L2-normalized, for pictures in `role`."""
        readout = self.read(pooled_features(feature_maps))
        return add_readout(image_emb, readout, self.weights(len(readout), logits, readout.device, role))

    def on_rows(self, emb: torch.Tensor, rows: torch.Tensor | list[int], feature_maps: torch.Tensor,
                logits: Optional[torch.Tensor] = None, role: ImageRole = "document") -> torch.Tensor:
        """(b, D) embeddings -> a copy with the read-out added to `rows` only (images alone); `feature_maps`
        (len(rows), C, h, w) and `logits` (len(rows), K) follow `rows`."""
        out = emb.clone()
        out[rows] = self(emb[rows], feature_maps, logits, role).to(emb.dtype)
        return out


def add_readout(image_emb: torch.Tensor, readout: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(n, D) embeddings, (n, D) read-outs, (n, 1) weights -> (n, D) normalize(e + weight * readout)."""
    return nn.functional.normalize(image_emb.float() + weight * readout, dim=-1)


def pooled_features(feature_maps: torch.Tensor) -> torch.Tensor:
    """(n, C, h, w) feature maps -> (n, C): the global average pool the tower's own classifier reads."""
    return feature_maps.float().mean(dim=(2, 3))
