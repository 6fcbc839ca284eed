"""Neighbour captions: an image's embedding nudged toward the captions of the training pictures it looks like.

The frozen image tower tells which pictures look alike far better than the trained paths tell what a picture shows:
its pooled features find a held-out emoji's other drawing first 32% of the time (emoji-styles, i2i), while text ->
image R@1 on held-out emoji is ~21%. A memory of the training pictures, each kept as its pooled features (the key)
and the model's mean embedding of its captions (the value), lets an unseen picture borrow the words of its look-alikes:

    key (n, p)     = normalize(P^T (unit(pooled) - mu))          unit(pooled): the tower's pooled features, unit length
    s (n, N)       = key @ keys^T                                cosines to the N memory pictures
    top k of s     -> weights softmax(s_top / temperature)       (n, k)
    neighbours     = normalize(sum_k weights_k * values[top_k])  (n, D)
    embedding      = normalize(e_image + w * neighbours)         w = weight (documents) or query_weight (queries)

mu is the mean of the memory's unit features and P (C, p) their top-p principal directions (p = key_dims: the keys
stay small enough to ship, ~4 MB for 7k pictures at p = 256, fp16). Texts never pass through it, and it applies to
images alone, as the label prior and the feature read-out do. Empty (size 0) it adds nothing.
`mmembed.training.neighbours.build_neighbour_captions` fills it from a run's pictures with the model's own text path,
so it belongs to that text space: the trainer rebuilds it when a recipe has a [neighbour_captions] table and drops it
(with a warning) when a run changes the text side without one.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ImageRole, NeighbourCaptionsConfig, role_weight
from .feature_readout import pooled_features


class NeighbourCaptions(nn.Module):
    def __init__(self, cfg: NeighbourCaptionsConfig, in_channels: int, dim: int):
        super().__init__()
        p = min(cfg.key_dims or in_channels, in_channels)  # a tower with fewer channels keeps them all
        self.cfg = cfg
        # fp16: the memory is shipped with the adapter; scores are computed in float32
        self.register_buffer("key_mean", torch.zeros(in_channels))  # (C,) mean of the memory's unit features
        self.register_buffer("key_basis", torch.eye(in_channels, p, dtype=torch.float16))  # (C, p)
        self.register_buffer("keys", torch.zeros(cfg.size, p, dtype=torch.float16))  # (N, p) unit rows
        self.register_buffer("values", torch.zeros(cfg.size, dim, dtype=torch.float16))  # (N, D) unit rows

    @property
    def size(self) -> int:
        return int(self.keys.shape[0])

    def key(self, pooled: torch.Tensor) -> torch.Tensor:
        """(n, C) pooled tower features -> (n, p) unit keys."""
        unit = nn.functional.normalize(pooled.float(), dim=-1) - self.key_mean.float()
        return nn.functional.normalize(unit @ self.key_basis.float(), dim=-1)

    def neighbours(self, pooled: torch.Tensor) -> torch.Tensor:
        """(n, C) pooled tower features -> (n, D) unit mean of the nearest memory pictures' caption embeddings."""
        if self.size == 0:
            return pooled.new_zeros(len(pooled), self.values.shape[1], dtype=torch.float32)
        sims = self.key(pooled) @ self.keys.float().T  # (n, N)
        top = sims.topk(min(self.cfg.k, self.size), dim=-1)  # (n, k)
        weights = (top.values / self.cfg.temperature).softmax(dim=-1)  # (n, k)
        mixed = (weights.unsqueeze(-1) * self.values[top.indices].float()).sum(dim=1)  # (n, D): k rows each, not all N
        return nn.functional.normalize(mixed, dim=-1)

    def role_weight(self, role: ImageRole) -> float:
        return role_weight(self.cfg.weight, self.cfg.query_weight, role)

    def forward(self, image_emb: torch.Tensor, feature_maps: torch.Tensor, role: ImageRole = "document") -> torch.Tensor:
        """(n, D) unit image embeddings, (n, C, h, w) the tower's feature maps -> (n, D) unit, for pictures in `role`."""
        nb = self.neighbours(pooled_features(feature_maps)).to(image_emb.device)
        return nn.functional.normalize(image_emb.float() + self.role_weight(role) * nb, dim=-1)

    def on_rows(self, emb: torch.Tensor, rows: torch.Tensor | list[int], feature_maps: torch.Tensor,
                role: ImageRole = "document") -> torch.Tensor:
        """(b, D) embeddings -> a copy with the neighbours added to `rows` only (images alone); `feature_maps`
        (len(rows), C, h, w) follow `rows`. A role weighted 0 is left untouched (not even renormalized), so its
        embeddings stay bit for bit what the model gives without a memory."""
        if self.role_weight(role) == 0:
            return emb
        out = emb.clone()
        out[rows] = self(emb[rows], feature_maps, role).to(emb.dtype)
        return out

    @torch.no_grad()
    def fill(self, pooled: torch.Tensor, values: torch.Tensor) -> None:
        """Set the memory: (N, C) pooled tower features of the pictures and (N, D) their caption embeddings (any
        length: stored as unit rows). Sizes the buffers; the config's `size` follows."""
        if pooled.ndim != 2 or values.ndim != 2 or len(pooled) != len(values) or len(pooled) < 1:
            raise ValueError(f"neighbour captions: need (N, C) features and (N, D) values with N >= 1, got "
                             f"{tuple(pooled.shape)} and {tuple(values.shape)}")
        if pooled.shape[1] != self.key_mean.shape[0] or values.shape[1] != self.values.shape[1]:
            raise ValueError(f"neighbour captions: features must have {self.key_mean.shape[0]} channels and values "
                             f"{self.values.shape[1]} dims, got {pooled.shape[1]} and {values.shape[1]}")
        unit = nn.functional.normalize(pooled.detach().float().cpu(), dim=-1)
        values = values.detach().cpu()
        mean = unit.mean(dim=0)
        centred = unit - mean  # (N, C)
        p = self.key_basis.shape[1]
        if p < unit.shape[1]:  # principal directions of the centred memory: rows of Vh
            basis = torch.linalg.svd(centred, full_matrices=False).Vh[:p].T  # (C, min(N, C)) -> (C, p)
            if basis.shape[1] < p:  # fewer pictures than key dims: pad with zero directions
                basis = torch.cat([basis, basis.new_zeros(basis.shape[0], p - basis.shape[1])], dim=1)
        else:
            basis = torch.eye(unit.shape[1])
        device = self.key_mean.device  # the model's (a trainer on a GPU builds from CPU features)
        self.key_mean = mean.to(device)
        self.key_basis = basis.to(device, torch.float16)
        self.keys = nn.functional.normalize(centred @ basis.half().float(), dim=-1).to(device, torch.float16)
        self.values = nn.functional.normalize(values.float(), dim=-1).to(device, torch.float16)
        self.cfg.size = len(pooled)
