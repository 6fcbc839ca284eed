"""Embedding a batch of training pairs, with caches for whatever is frozen.

A frozen image tower -> its pooled feature maps are computed once per image and reused.
A frozen backbone with a parameter-free pooler -> a text's pooled state is computed once and
only the head (and everything on the image side) trains: the fast path that makes CPU training
of the shipped model possible. With LoRA, texts run through the backbone every step.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..model import MMEmbedModel
from .pairs import TrainPair


def _frozen(module: Optional[torch.nn.Module]) -> bool:
    return module is not None and not any(p.requires_grad for p in module.parameters())


class PairEmbedder:
    def __init__(self, model: MMEmbedModel, chunk: int = 64):
        self.model = model
        self.chunk = chunk
        self.cache_texts = _frozen(model.backbone) and _frozen(model.pooler)
        self.cache_images = _frozen(model.image_tower)
        self._text_states: dict[str, torch.Tensor] = {}  # text -> (d,) pooled state
        self._image_features: dict[str, torch.Tensor] = {}  # path -> (c, s, s) pooled feature map

    # ---- texts ---------------------------------------------------------------------------
    def _compute_states(self, texts: Sequence[str]) -> torch.Tensor:
        plans = self.model.text.text_plans(texts)
        order = sorted(range(len(plans)), key=lambda i: -len(plans[i]))  # little padding
        out = [None] * len(plans)
        for s in range(0, len(order), self.chunk):
            idx = order[s : s + self.chunk]
            states = self.model.pooled([plans[i] for i in idx])
            for j, i in enumerate(idx):
                out[i] = states[j]
        return torch.stack(out)

    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, D) embeddings; gradients flow when grad is enabled."""
        if not self.cache_texts:
            return self.model.finish(self._compute_states(texts))
        missing = sorted({t for t in texts if t not in self._text_states})
        if missing:
            with torch.no_grad():  # not inference_mode: the states feed the head's autograd graph
                states = self._compute_states(missing)
            self._text_states.update(zip(missing, states))
        return self.model.finish(torch.stack([self._text_states[t] for t in texts]))

    # ---- images --------------------------------------------------------------------------
    def _features(self, paths: Sequence[str]) -> torch.Tensor:
        side = self.model.projector.side
        missing = [p for p in dict.fromkeys(paths) if p not in self._image_features] if self.cache_images else list(paths)
        fresh = {}
        for s in range(0, len(missing), self.chunk):
            part = missing[s : s + self.chunk]
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cache_images):
                feats = self.model.image_tower.forward_features(self.model.pixels(part).to(self.model.logit_scale.device))
                pooled = torch.nn.functional.adaptive_avg_pool2d(feats, side)  # (b, c, s, s): all the projector reads
            fresh.update(zip(part, pooled))
        if not self.cache_images:
            return torch.stack([fresh[p] for p in paths])
        self._image_features.update(fresh)
        return torch.stack([self._image_features[p] for p in paths])

    def images(self, paths: Sequence[str]) -> torch.Tensor:
        visual = self.model.project_features(self._features(paths))  # (n, k, d)
        plans = self.model.text.image_plans(len(paths), self.model.num_visual_tokens)
        return self.model(plans, visual)

    # ---- pairs -----------------------------------------------------------------------------
    def pairs(self, pairs: Sequence[TrainPair]) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """-> anchors (b, D), positives (b, D), hard negatives (b, D) or None."""
        img_idx = [i for i, p in enumerate(pairs) if p.image is not None]
        txt_idx = [i for i, p in enumerate(pairs) if p.image is None]
        parts = []
        if img_idx:
            parts.append((img_idx, self.images([pairs[i].image for i in img_idx])))
        if txt_idx:
            parts.append((txt_idx, self.texts([pairs[i].text for i in txt_idx])))
        order = torch.tensor([i for idx, _ in parts for i in idx])
        anchors = torch.cat([e for _, e in parts])[order.argsort()]  # back to batch order
        positives = self.texts([p.positive for p in pairs])
        negatives = None
        if any(p.negative for p in pairs):
            if not all(p.negative for p in pairs):
                raise ValueError("either every pair in a batch has a hard negative or none does")
            negatives = self.texts([p.negative for p in pairs])
        return anchors, positives, negatives
