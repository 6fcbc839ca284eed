"""Pooling (b, t, d) hidden states with a (b, t) mask into (b, d) sequence vectors.

Every pooler uses the mask, never positions: the tokenizer may pad on either side.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import PoolingConfig


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    t = mask.shape[1]
    idx = (mask.long() * torch.arange(t, device=mask.device)).argmax(-1)  # last real token per row
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


def mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    w = mask.to(hidden.dtype).unsqueeze(-1)  # (b, t, 1)
    return (hidden * w).sum(1) / w.sum(1).clamp(min=1.0)


def weighted_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SGPT position-weighted mean: later tokens (which have seen more context) weigh more."""
    w = (mask.long().cumsum(-1) * mask.long()).to(hidden.dtype).unsqueeze(-1)  # (b, t, 1): 1..n
    return (hidden * w).sum(1) / w.sum(1).clamp(min=1.0)


class LatentAttentionPooler(nn.Module):
    """NV-Embed: tokens attend to a trainable latent array (r, d), then an MLP, then masked mean."""

    def __init__(self, dim: int, num_latents: int, num_heads: int):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * dim**-0.5)  # (r, d)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latents = self.latents.unsqueeze(0).expand(hidden.shape[0], -1, -1).to(hidden.dtype)  # (b, r, d)
        attended, _ = self.attn(hidden, latents, latents, need_weights=False)  # (b, t, d)
        out = attended + self.mlp(attended)
        return mean(out, mask)


class Pooler(nn.Module):
    def __init__(self, cfg: PoolingConfig, dim: int):
        super().__init__()
        self.kind = cfg.kind
        self.latent = LatentAttentionPooler(dim, cfg.num_latents, cfg.num_heads) if cfg.kind == "latent_attention" else None
        if cfg.kind not in ("last_token", "mean", "weighted_mean", "latent_attention"):
            raise ValueError(f"unknown pooling {cfg.kind!r}; known: last_token, mean, weighted_mean, latent_attention")

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.latent is not None:
            return self.latent(hidden.float(), mask)
        fn = {"last_token": last_token, "mean": mean, "weighted_mean": weighted_mean}[self.kind]
        return fn(hidden.float(), mask)
