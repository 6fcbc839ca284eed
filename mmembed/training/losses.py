"""Contrastive losses on embedding tensors (never on the model), built on open_clip's losses.

`a` (b, d) anchors (images or texts) and `p` (b, d) positives, L2-normalized; row i of each is a
pair, every other row an in-batch negative. With world_size > 1, open_clip gathers features from
all ranks WITH gradients, so each rank's loss is the loss of the global batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossConfig:
    kind: Literal["clip", "siglip"] = "clip"  # symmetric InfoNCE (ClipLoss) or sigmoid (SigLipLoss)
    matryoshka_dims: tuple[int, ...] = ()  # also train these truncated dims (renormalized)


def rank_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _infonce_with_negatives(a, p, n, scale, rank, world):
    """Symmetric InfoNCE where a->p also ranks against hard negatives `n` (b, d)."""
    from open_clip.loss import gather_features

    if world > 1:
        a_all, p_all = gather_features(a, p, gather_with_grad=True, rank=rank, world_size=world)
        _, n_all = gather_features(a, n, gather_with_grad=True, rank=rank, world_size=world)
    else:
        a_all, p_all, n_all = a, p, n
    labels = torch.arange(a_all.shape[0], device=a.device)
    logits_a = scale * a_all @ torch.cat([p_all, n_all]).T  # (B, 2B): positives then hard negatives
    logits_p = scale * p_all @ a_all.T  # (B, B)
    return (F.cross_entropy(logits_a, labels) + F.cross_entropy(logits_p, labels)) / 2


def _one_dim(a, p, n, logit_scale, logit_bias, cfg: LossConfig) -> torch.Tensor:
    rank, world = rank_world()
    scale = logit_scale.exp().clamp(max=100.0)  # CLIP's cap on the temperature
    if cfg.kind == "siglip":
        from open_clip.loss import SigLipLoss

        if n is not None:
            raise ValueError("hard negatives are supported with kind='clip' (InfoNCE), not siglip")
        return SigLipLoss(rank=rank, world_size=world)(a, p, scale, logit_bias)
    if n is not None:
        return _infonce_with_negatives(a, p, n, scale, rank, world)
    from open_clip.loss import ClipLoss

    return ClipLoss(local_loss=False, gather_with_grad=True, cache_labels=False, rank=rank, world_size=world)(a, p, scale)


def contrastive_loss(
    a: torch.Tensor,
    p: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    negatives: Optional[torch.Tensor] = None,
    logit_bias: Optional[torch.Tensor] = None,
    cfg: LossConfig = LossConfig(),
) -> torch.Tensor:
    """Mean of the loss at full dim and at each Matryoshka dim."""
    dims: Sequence[Optional[int]] = [None] + [d for d in cfg.matryoshka_dims if d < a.shape[1]]
    losses = []
    for d in dims:
        if d is None:
            aa, pp, nn_ = a, p, negatives
        else:
            aa, pp = F.normalize(a[:, :d], dim=-1), F.normalize(p[:, :d], dim=-1)
            nn_ = F.normalize(negatives[:, :d], dim=-1) if negatives is not None else None
        losses.append(_one_dim(aa, pp, nn_, logit_scale, logit_bias, cfg))
    return torch.stack(losses).mean()
