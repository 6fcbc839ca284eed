"""Contrastive losses on embedding tensors (never on the model), built on open_clip's losses.

`a` (b, d) anchors (images or texts) and `p` (b, d) positives, L2-normalized; row i of each is a
pair, every other row an in-batch negative. With world_size > 1, open_clip gathers features from
all ranks WITH gradients, so each rank's loss is the loss of the global batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn.functional as F

from .config import LossKind

if TYPE_CHECKING:
    from .teacher import TeacherMap


@dataclass(frozen=True)
class LossConfig:
    kind: LossKind = "clip"
    matryoshka_dims: tuple[int, ...] = ()  # also train these truncated dims (renormalized)


def rank_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _negative_counts(n: Optional[torch.Tensor], world: int) -> list[int]:
    """Hard negatives held by each rank (k_r; 0 for none). Gathered once per loss, not per Matryoshka
    dim: every rank must take the same loss path (collectives), and the padded gather needs them."""
    k = torch.tensor([0 if n is None else n.shape[0]])
    if world == 1:
        return [int(k)]
    counts = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
    torch.distributed.all_gather(counts, k)
    return [int(c) for c in counts]


def _gather_rows_with_grad(x: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Every rank's rows of `x` (k_r, d), in rank order, with gradients; k_r (`counts`) may differ per
    rank (hard negatives are optional per pair), so rows are padded to the largest k_r for all_gather."""
    import torch.distributed.nn

    padded = F.pad(x, (0, 0, 0, max(counts) - x.shape[0]))  # (max k, d)
    parts = torch.distributed.nn.all_gather(padded)
    return torch.cat([part[:k] for part, k in zip(parts, counts)])


def _infonce_with_negatives(a, p, n, counts, scale, rank, world):
    """Symmetric InfoNCE where a->p also ranks against the hard negatives `n` (k, d): extra
    candidate columns shared by every anchor, so k may be anything from 0 to b."""
    from open_clip.loss import gather_features

    if world > 1:
        a_all, p_all = gather_features(a, p, gather_with_grad=True, rank=rank, world_size=world)
        n_all = _gather_rows_with_grad(n, counts)
    else:
        a_all, p_all, n_all = a, p, n
    labels = torch.arange(a_all.shape[0], device=a.device)
    logits_a = scale * a_all @ torch.cat([p_all, n_all]).T  # (B, B + K): positives then hard negatives
    logits_p = scale * p_all @ a_all.T  # (B, B)
    return (F.cross_entropy(logits_a, labels) + F.cross_entropy(logits_p, labels)) / 2


def _one_dim(a, p, n, counts, logit_scale, logit_bias, cfg: LossConfig) -> torch.Tensor:
    rank, world = rank_world()
    scale = logit_scale.exp().clamp(max=100.0)  # CLIP's cap on the temperature
    if cfg.kind == "siglip":
        from open_clip.loss import SigLipLoss

        if n is not None:
            raise ValueError("hard negatives are supported with kind='clip' (InfoNCE), not siglip")
        return SigLipLoss(rank=rank, world_size=world)(a, p, scale, logit_bias)
    if n is not None:
        return _infonce_with_negatives(a, p, n, counts, scale, rank, world)
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
    """Mean of the loss at full dim and at each Matryoshka dim.

    `negatives` (k, d): hard negatives of the pairs that have one (any k, 0 <= k); every anchor
    ranks its positive against all of them as well as against the other positives."""
    counts: list[int] = []
    if cfg.kind == "clip":
        counts = _negative_counts(negatives, rank_world()[1])
        # a rank without negatives still joins their all_gather, forward AND backward: a[:0] keeps the
        # empty (0, d) block in the graph, so every rank's backward runs the same collectives
        negatives = (negatives if negatives is not None else a[:0]) if sum(counts) else None
    dims: Sequence[Optional[int]] = [None] + [d for d in cfg.matryoshka_dims if d < a.shape[1]]
    losses = []
    for d in dims:
        if d is None:
            aa, pp, nn_ = a, p, negatives
        else:
            aa, pp = F.normalize(a[:, :d], dim=-1), F.normalize(p[:, :d], dim=-1)
            nn_ = F.normalize(negatives[:, :d], dim=-1) if negatives is not None else None
        losses.append(_one_dim(aa, pp, nn_, counts, logit_scale, logit_bias, cfg))
    return torch.stack(losses).mean()


def _gather_plain(x: torch.Tensor, world: int) -> torch.Tensor:
    """Every rank's `x` (same shape on each), in rank order, without gradients (teacher targets, masks)."""
    parts = [torch.zeros_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def _distilled_rows(a, p, teacher_a, teacher_p, mask):
    """The global batch's student rows (gathered with gradients under torch.distributed), teacher rows and
    the indices of the rows with teacher vectors: what both teacher terms score."""
    rank, world = rank_world()
    mask = mask.to(torch.uint8)
    if world > 1:
        from open_clip.loss import gather_features

        a, p = gather_features(a, p, gather_with_grad=True, rank=rank, world_size=world)
        teacher_a, teacher_p, mask = (_gather_plain(t, world) for t in (teacher_a, teacher_p, mask))
    return a, p, teacher_a, teacher_p, mask.bool().nonzero().squeeze(1)


def distill_loss(
    a: torch.Tensor,
    p: torch.Tensor,
    teacher_a: torch.Tensor,
    teacher_p: torch.Tensor,
    mask: torch.Tensor,
    logit_scale: torch.Tensor,
    temperature: float,
    only_where_teacher_is_right: bool = True,
) -> torch.Tensor:
    """KL(teacher || student) of the in-batch similarity distributions, anchor -> positive and back.

    a, p (b, D): student unit rows; teacher_a, teacher_p (b, Dt): the teacher's unit rows of the same texts;
    mask (b,): the rows that have teacher vectors (others take no part, as candidates or as queries).
    Student logits use the model's current scale, detached: the contrastive term learns the temperature,
    this term only shapes which candidates are close. With `only_where_teacher_is_right`, a query whose
    teacher ranks a wrong candidate first is left to the contrastive term (a teacher weak in some language
    would otherwise teach the wrong answer). Under torch.distributed the rows of all ranks are gathered
    (the student's with gradients), so it is the loss of the global batch, like contrastive_loss."""
    a, p, teacher_a, teacher_p, rows = _distilled_rows(a, p, teacher_a, teacher_p, mask)
    if len(rows) < 2:  # no candidates to spread mass over; stays in the graph so every rank's backward matches
        return (a.sum() + p.sum()) * 0.0
    with torch.autocast(a.device.type, enabled=False):  # fp32: a KL of near-equal distributions is lost in bf16
        return _distill_fp32(a[rows].float(), p[rows].float(), teacher_a[rows].float(), teacher_p[rows].float(),
                             logit_scale, temperature, only_where_teacher_is_right)


def _distill_fp32(a, p, teacher_a, teacher_p, logit_scale, temperature, only_where_teacher_is_right):
    scale = logit_scale.detach().float().exp().clamp(max=100.0)
    student = scale * a @ p.T  # (m, m)
    teacher = teacher_a @ teacher_p.T / temperature  # (m, m)
    diagonal = torch.arange(len(a), device=student.device)

    def kl_per_query(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # (m, m) logits -> (m,)
        kl = (F.softmax(t, dim=-1) * (F.log_softmax(t, dim=-1) - F.log_softmax(s, dim=-1))).sum(-1)
        keep = (t.argmax(-1) == diagonal) if only_where_teacher_is_right else torch.ones_like(diagonal, dtype=torch.bool)
        return (kl * keep).sum() / keep.sum().clamp(min=1)

    return (kl_per_query(student, teacher) + kl_per_query(student.T, teacher.T)) / 2


def embedding_distill_loss(
    a: torch.Tensor,
    p: torch.Tensor,
    teacher_a: torch.Tensor,
    teacher_p: torch.Tensor,
    mask: torch.Tensor,
    teacher_map: "TeacherMap",
) -> torch.Tensor:
    """Mean over every distilled text (anchors and positives of the rows in `mask`) of
    1 - cos((x - mean_s) @ W, t - mean_t): each student embedding x (D,), mapped by the fixed centered map
    (mmembed.training.teacher.TeacherMap), toward the teacher's centered vector t (Dt,) of the same text.
    Shapes as in distill_loss. Under torch.distributed the rows of all ranks are gathered, so it
    is the mean over the global batch (a per-rank mean would weight ranks by their share of distilled rows)."""
    a, p, teacher_a, teacher_p, rows = _distilled_rows(a, p, teacher_a, teacher_p, mask)
    if len(rows) == 0:  # stays in the graph so every rank's backward matches
        return (a.sum() + p.sum()) * 0.0
    with torch.autocast(a.device.type, enabled=False):
        student = torch.cat([a[rows], p[rows]])  # (2m, D)
        target = torch.cat([teacher_a[rows], teacher_p[rows]])  # (2m, Dt)
        return (1 - teacher_map.to(a.device).cosine(student, target)).mean()
