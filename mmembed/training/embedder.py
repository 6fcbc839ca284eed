"""Embedding a batch of training pairs, with caches for whatever is frozen.

A frozen image tower -> its pooled feature maps are computed once per image and reused.
A feature anchor (a row of a feature table, e.g. an ImageNet class prototype) is a pooled feature
vector (c,): its map is that vector broadcast to a constant (c, s, s), which is what the projector
reads (adaptive pooling of a constant map is the map itself).
A frozen backbone with a parameter-free pooler -> a text's pooled state is computed once and
only the head (and everything on the image side) trains: the fast path that makes CPU training
of the shipped model possible. With LoRA, texts run through the backbone every step.
With `label_prior_in_loss`, image-file anchors get the model's label prior inside the loss (as
`encode_image` gives it to users), the class names embedded through the head being trained, so the
projector and head learn what the ImageNet classifier does not already say.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..data.feature_table import FeatureTableError, load_feature_table
from ..data.manifest import FeatureRef
from ..label_prior import imagenet_class_names
from ..model import MMEmbedModel
from ..vision import tower_channels
from .pairs import TrainPair


def _in_batch_order(parts: Sequence[tuple[Sequence[int], torch.Tensor]]) -> torch.Tensor:
    """[(indices, rows)] -> the rows concatenated back into index order."""
    order = torch.tensor([i for idx, _ in parts for i in idx])
    return torch.cat([rows for _, rows in parts])[order.argsort()]


def _frozen(module: Optional[torch.nn.Module]) -> bool:
    return module is not None and not any(p.requires_grad for p in module.parameters())


class LabelPriorInLossError(ValueError):
    """label_prior_in_loss asked of a model or run that cannot give it."""


class PairEmbedder:
    def __init__(self, model: MMEmbedModel, chunk: int = 64, label_prior_in_loss: bool = False):
        self.model = model
        self.chunk = chunk
        self.cache_texts = _frozen(model.backbone) and _frozen(model.pooler)
        self.cache_images = _frozen(model.image_tower)
        self.label_prior_in_loss = label_prior_in_loss
        if label_prior_in_loss:
            if model.label_prior is None:
                raise LabelPriorInLossError(f"label_prior_in_loss: the model being trained ({model.name!r}) has no label "
                                            "prior: start from a base that has one (the default model does) or add a "
                                            "[label_prior] table to the recipe")
            if not self.cache_texts:
                raise LabelPriorInLossError("label_prior_in_loss needs freeze_lora = true: the 1000 class names are "
                                            "embedded every step through the head, from cached backbone states")
        self._text_states: dict[str, torch.Tensor] = {}  # text -> (d,) pooled state
        self._image_features: dict[str, torch.Tensor] = {}  # path -> (c, s, s) pooled feature map
        self._image_logits: dict[str, torch.Tensor] = {}  # path -> (C,) classifier logits (label prior only)
        self._class_names = imagenet_class_names() if label_prior_in_loss else []
        self._tables: dict[tuple[str, str], torch.Tensor] = {}  # (file, tensor) -> (n, c) feature table

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
            if self.label_prior_in_loss:
                with torch.no_grad():  # the classifier's probabilities gate the prior; they are not trained
                    self._image_logits.update(zip(part, self.model.image_tower.forward_head(feats)))  # (b, C)
            fresh.update(zip(part, pooled))
        if not self.cache_images:
            return torch.stack([fresh[p] for p in paths])
        self._image_features.update(fresh)
        return torch.stack([self._image_features[p] for p in paths])

    def _table(self, ref: FeatureRef) -> torch.Tensor:
        key = (ref.file, ref.tensor)
        if key not in self._tables:
            if self.model.image_tower is None:
                raise FeatureTableError(f"feature anchors of {ref.file} need a model with an image tower; "
                                        f"{self.model.name!r} has none")
            self._tables[key] = load_feature_table(ref.file, ref.tensor, channels=tower_channels(self.model.image_tower))
        return self._tables[key]

    def _feature_maps(self, refs: Sequence[FeatureRef]) -> torch.Tensor:
        """Feature-table rows -> (n, c, s, s) constant maps (the table is data: no gradient)."""
        rows = []
        for ref in refs:
            table = self._table(ref)
            if ref.row >= len(table):
                raise FeatureTableError(f"feature table {ref.file}: row {ref.row} is out of range ({len(table)} rows)")
            rows.append(table[ref.row])
        side = self.model.projector.side
        vectors = torch.stack(rows).to(self.model.logit_scale.device)  # (n, c)
        return vectors[:, :, None, None].expand(-1, -1, side, side)

    def _anchor_maps(self, pairs: Sequence[TrainPair]) -> torch.Tensor:
        """(n, c, s, s) maps of image-side anchors: image files through the tower, feature rows broadcast."""
        files = [i for i, p in enumerate(pairs) if p.image is not None]
        rows = [i for i, p in enumerate(pairs) if p.image is None]
        parts = []
        if files:
            parts.append((files, self._features([pairs[i].image for i in files])))
        if rows:
            parts.append((rows, self._feature_maps([pairs[i].features for i in rows])))
        return _in_batch_order(parts)

    def _embed_maps(self, maps: torch.Tensor) -> torch.Tensor:
        visual = self.model.project_features(maps)  # (n, k, d)
        plans = self.model.text.image_plans(len(maps), self.model.num_visual_tokens)
        return self.model(plans, visual)

    def images(self, paths: Sequence[str]) -> torch.Tensor:
        return self._embed_maps(self._features(paths))

    def _with_label_prior(self, pairs: Sequence[TrainPair], emb: torch.Tensor) -> torch.Tensor:
        """(n, D) anchor embeddings -> the same with the label prior on the image files (not feature rows,
        which users never embed)."""
        rows = [i for i, p in enumerate(pairs) if p.image is not None]
        if not rows:
            return emb
        logits = torch.stack([self._image_logits[pairs[i].image] for i in rows])  # (r, C)
        table = self.texts(self._class_names)  # (C, D): through the head, so it trains with it
        assert self.model.label_prior is not None
        return self.model.label_prior.on_rows(emb, rows, logits, table)

    def feature_anchors(self, refs: Sequence[FeatureRef]) -> torch.Tensor:
        """(n, D) embeddings of feature-table rows, as an image with those pooled features."""
        return self._embed_maps(self._feature_maps(refs))

    # ---- pairs -----------------------------------------------------------------------------
    def pairs(self, pairs: Sequence[TrainPair]) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """-> anchors (b, D), positives (b, D), and the hard negatives (k, D) of the k pairs that have
        one (None when k = 0): they are extra candidates for every anchor, not aligned with rows."""
        img_idx = [i for i, p in enumerate(pairs) if p.image is not None or p.features is not None]
        txt_idx = [i for i, p in enumerate(pairs) if p.image is None and p.features is None]
        parts = []
        if img_idx:
            anchor_pairs = [pairs[i] for i in img_idx]
            emb = self._embed_maps(self._anchor_maps(anchor_pairs))
            parts.append((img_idx, self._with_label_prior(anchor_pairs, emb) if self.label_prior_in_loss else emb))
        if txt_idx:
            parts.append((txt_idx, self.texts([pairs[i].text for i in txt_idx])))
        anchors = _in_batch_order(parts)
        positives = self.texts([p.positive for p in pairs])
        negative_texts = [p.negative for p in pairs if p.negative]
        negatives = self.texts(negative_texts) if negative_texts else None
        return anchors, positives, negatives
