"""Label prior: an image's embedding nudged toward the model's own embeddings of its likely labels.

The frozen image tower (EfficientNet-Lite0) still carries its ImageNet-1k classifier, which knows
photographs far better than our projector, trained mostly on emoji and drawings, does. For an image:

    logits (b, C) -> softmax -> top-k probabilities p (b, k) and class ids (b, k)
    prior (b, D)  = sum_k p_k * L[id_k]         L (C, D): the model's text embeddings of the C class names
    embedding     = normalize(e_image + weight * prior)

p is not renormalized over the top k, so the classifier's confidence gates the prior: a photograph
it is sure of gets nearly `weight` of prior, an emoji or a drawing outside ImageNet's domain
(median top-1 probability ~0.2 on our emoji and clip-art dev sets) little. The class names are
embedded by the same text path as queries, so a Swahili query meets the prior in the model's
multilingual space, not through English labels.

L is a buffer saved with the model. It depends on the text path, so `refresh_label_embeddings`
recomputes it after training changes that path (the trainer calls it before dev scoring and export).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from .config import LabelPriorConfig

if TYPE_CHECKING:
    from .model import MMEmbedModel

IMAGENET_CLASSES = 1000


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in classifier order ("tabby, tabby cat", ...), from timm."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(IMAGENET_CLASSES)]


class LabelPrior(nn.Module):
    def __init__(self, cfg: LabelPriorConfig, num_classes: int, dim: int):
        super().__init__()
        if cfg.weight < 0:
            raise ValueError(f"label_prior.weight must be >= 0, got {cfg.weight}")
        if not 1 <= cfg.top_k <= num_classes:
            raise ValueError(f"label_prior.top_k must be in 1..{num_classes}, got {cfg.top_k}")
        self.cfg = cfg
        self.register_buffer("label_embeddings", torch.zeros(num_classes, dim))  # (C, D), filled by refresh

    def forward(self, image_emb: torch.Tensor, logits: torch.Tensor, label_embeddings: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(n, D) L2-normalized image embeddings, (n, C) classifier logits -> (n, D) L2-normalized.

        `label_embeddings` (C, D) replaces the buffer: training passes the class names' embeddings
        computed through the head it trains, so gradients flow into them.
        """
        table = self.label_embeddings if label_embeddings is None else label_embeddings
        probs = logits.float().softmax(dim=-1)
        top = probs.topk(self.cfg.top_k, dim=-1)  # values, indices: (n, k)
        labels = table[top.indices]  # (n, k, D); the buffer moves with the model
        prior = (top.values.unsqueeze(-1) * labels).sum(dim=1)  # (n, D)
        return nn.functional.normalize(image_emb + self.cfg.weight * prior, dim=-1)

    def on_rows(self, emb: torch.Tensor, rows: torch.Tensor | list[int], logits: torch.Tensor,
                label_embeddings: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(b, D) embeddings -> a copy with the prior applied to `rows` only (images alone, not texts or
        fused pairs); `logits` (len(rows), C) follow `rows`."""
        out = emb.clone()
        out[rows] = self(emb[rows].float(), logits, label_embeddings).to(emb.dtype)
        return out


def refresh_label_embeddings(model: "MMEmbedModel", batch_size: int = 64) -> None:
    """Embed the class names with the model's current text path into its label prior (no-op without one)."""
    if model.label_prior is None:
        return
    from .neighbour_captions import paused_text_side

    with paused_text_side(model):  # the plain text path: a table of words, not of the pictures they name
        emb = model.encode_text(imagenet_class_names(), batch_size=batch_size, as_tensor=True)  # (C, D)
    buffer = model.label_prior.label_embeddings
    buffer.copy_(emb.to(buffer.device, buffer.dtype))
