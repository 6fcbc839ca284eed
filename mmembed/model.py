"""MMEmbedModel: modality front ends -> ONE shared LLM backbone -> pooling -> one embedding space.

    text  -> tokenizer + prompt ----------------------------------\
    image -> tower (b,c,h,w) -> projector (b,k,d) -> prompt slot ---+-> backbone (b,t,d) -> pool (b,d)
                                                                        -> head -> L2 norm (b,D)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .backbone import attention_bias, hidden_size, input_embeddings, load_backbone, position_ids_from_mask
from .config import ModelConfig
from .images import images_to_tensor
from .image_centering import ImageCentering
from .feature_readout import FeatureReadout
from .neighbour_captions import NeighbourCaptions
from .label_prior import IMAGENET_CLASSES, LabelPrior
from .pooling import Pooler
from .text_frontend import SequencePlan, TextFrontend
from .tokenizer import TextTokenizer
from .vision import VisualProjector, create_image_tower, tower_channels


class MMEmbedModel(nn.Module):
    def __init__(self, config: ModelConfig, *, backbone: Optional[nn.Module] = None, tokenizer: Optional[TextTokenizer] = None):
        super().__init__()
        self.config = config
        if backbone is None:
            backbone, tokenizer = load_backbone(config.backbone)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.text = TextFrontend(tokenizer, config.prompt, config.backbone.max_length)
        d = hidden_size(backbone)
        self.image_tower = create_image_tower(config.image_tower) if config.image_tower is not None else None
        with torch.random.fork_rng(devices=[], enabled=config.init_seed is not None):
            if config.init_seed is not None:  # test models: the same random parts at every load
                torch.manual_seed(config.init_seed)
            self.projector = (
                VisualProjector(tower_channels(self.image_tower), d, config.projector) if self.image_tower is not None else None
            )
            self.pooler = Pooler(config.pooling, d)
            self.head = nn.Linear(d, config.embed_dim) if config.embed_dim else nn.Identity()
        if config.embed_dim == d and config.head_init == "identity":  # start as the identity: training begins from the prompt-only space
            nn.init.eye_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's init; learned in training
        self.logit_bias = nn.Parameter(torch.tensor(-10.0))  # SigLIP's init; used by the sigmoid loss only
        self.backbone.requires_grad_(False)  # the base stays frozen; LoRA adds the trainable part
        if config.lora is not None:
            self.add_lora()
        self.label_prior: Optional[LabelPrior] = None
        if config.label_prior is not None:
            self.add_label_prior()
        self.image_centering: Optional[ImageCentering] = None
        if config.image_centering is not None:
            self.add_image_centering()
        self.feature_readout: Optional[FeatureReadout] = None
        if config.feature_readout is not None:
            self.add_feature_readout()
        self.neighbour_captions: Optional[NeighbourCaptions] = None
        if config.neighbour_captions is not None:
            self.add_neighbour_captions()
        self.eval()

    # ---- construction helpers -------------------------------------------------------------
    def add_lora(self) -> None:
        """Inject LoRA adapters (config.lora) into the backbone's target modules; only they train."""
        from peft import LoraConfig as PeftLoraConfig
        from peft import inject_adapter_in_model

        c = self.config.lora
        peft_cfg = PeftLoraConfig(
            r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=list(c.target_modules), bias="none"
        )
        inject_adapter_in_model(peft_cfg, self.backbone)  # in place: module types stay transformers'
        for name, p in self.backbone.named_parameters():
            p.requires_grad_("lora_" in name)
        for name, module in self.backbone.named_modules():
            if "lora_" in name:
                module.float()  # adapters train in fp32 even when the frozen base is bf16

    def add_label_prior(self) -> None:
        """Attach the label prior (config.label_prior); its label embeddings start at zero (no effect)
        until mmembed.label_prior.refresh_label_embeddings fills them."""
        cfg = self.config.label_prior
        num_classes = int(getattr(self.image_tower, "num_classes", 0) or 0)
        if cfg is None or num_classes != IMAGENET_CLASSES:
            raise ValueError(
                f"model {self.name!r}: label_prior needs an image tower with its ImageNet-1k classifier "
                f"({IMAGENET_CLASSES} classes), this one has {'no tower' if self.image_tower is None else num_classes}"
            )
        self.label_prior = LabelPrior(cfg, num_classes, self.dim)

    def add_image_centering(self) -> None:
        """Attach image centering (config.image_centering); its mean starts at zero (no effect) until
        mmembed.image_centering.fit_image_centering fills it."""
        if self.config.image_centering is None or self.image_tower is None:
            raise ValueError(f"model {self.name!r}: image_centering needs an image tower and config.image_centering")
        self.image_centering = ImageCentering(self.config.image_centering, self.dim)

    def add_feature_readout(self) -> None:
        """Attach the feature read-out (config.feature_readout); it adds nothing until
        mmembed.training.readout.fit_feature_readout fits it."""
        if self.config.feature_readout is None or self.image_tower is None:
            raise ValueError(f"model {self.name!r}: feature_readout needs an image tower and config.feature_readout")
        self.feature_readout = FeatureReadout(self.config.feature_readout, tower_channels(self.image_tower), self.dim)

    def add_neighbour_captions(self) -> None:
        """Attach the memory of training pictures (config.neighbour_captions), sized by its config; empty, it adds
        nothing until mmembed.training.neighbours.build_neighbour_captions fills it."""
        if self.config.neighbour_captions is None or self.image_tower is None:
            raise ValueError(f"model {self.name!r}: neighbour_captions needs an image tower and config.neighbour_captions")
        self.neighbour_captions = NeighbourCaptions(self.config.neighbour_captions, tower_channels(self.image_tower), self.dim)

    def set_lora_merged(self, merged: bool) -> None:
        """Fold LoRA into the base weights (inference: as fast as the plain backbone) or take it back
        out (training: gradients reach the adapters). Only fp32 bases merge: merging into bf16 would
        round the base weights a little more on every merge/unmerge cycle."""
        if self.config.lora is None:
            return
        from peft.tuners.lora import LoraLayer

        for module in self.backbone.modules():
            if not isinstance(module, LoraLayer) or module.merged == merged:
                continue
            if merged and module.get_base_layer().weight.dtype == torch.float32:
                module.merge()
            elif not merged:
                module.unmerge()

    def train(self, mode: bool = True):
        if mode:
            self.set_lora_merged(False)
        return super().train(mode)

    @property
    def dim(self) -> int:
        return int(self.config.embed_dim or hidden_size(self.backbone))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def num_visual_tokens(self) -> int:
        return self.config.projector.num_visual_tokens

    # ---- the differentiable path (used by training and by encode) ---------------------------
    def visual_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b, 3, s, s) normalized pixels -> (b, k, d) visual tokens."""
        if self.image_tower is None or self.projector is None:
            raise RuntimeError(f"model {self.name!r} has no image tower")
        return self.projector(self.image_features(pixels))

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b, 3, s, s) normalized pixels -> (b, c, h, w) tower feature map."""
        if self.image_tower is None:
            raise RuntimeError(f"model {self.name!r} has no image tower")
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.image_tower.parameters())
        with torch.set_grad_enabled(grad):
            return self.image_tower.forward_features(pixels.to(self.logit_scale.device))

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) cached tower features -> (b, k, d): training reuses features of a frozen tower."""
        assert self.projector is not None
        return self.projector(features)

    def forward(self, plans: Sequence[SequencePlan], visual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embed a batch of sequence plans -> (b, D) float32, L2-normalized.

        `visual` (n, k, d) holds the visual tokens of the plans with num_visual > 0, in order.
        """
        return self.finish(self.pooled(plans, visual))

    def pooled(self, plans: Sequence[SequencePlan], visual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(b, d) pooled backbone states, before the head (training caches these when frozen)."""
        embeds, mask = self._assemble(plans, visual)  # (b, t, d), (b, t)
        causal = self.config.backbone.attention == "causal"
        out = self.backbone(
            inputs_embeds=embeds,
            attention_mask=attention_bias(mask, causal, embeds.dtype),
            position_ids=position_ids_from_mask(mask),
            use_cache=False,
        )
        return self.pooler(out.last_hidden_state, mask)  # (b, d) float32

    def finish(self, pooled: torch.Tensor) -> torch.Tensor:
        """(b, d) pooled states -> (b, D) embeddings: head, then L2 norm."""
        return nn.functional.normalize(self.head(pooled), dim=-1)

    def _assemble(self, plans: Sequence[SequencePlan], visual: Optional[torch.Tensor]):
        b, t = len(plans), max(len(p) for p in plans)
        pad = self.text.pad_id
        ids = torch.full((b, t), pad, dtype=torch.long)
        mask = torch.zeros((b, t), dtype=torch.long)
        slots = torch.zeros((b, t), dtype=torch.bool)  # where visual tokens go
        left = self.config.padding_side == "left"
        for i, plan in enumerate(plans):
            n = len(plan)
            start = t - n if left else 0
            seq = plan.before + (pad,) * plan.num_visual + plan.after
            ids[i, start : start + n] = torch.tensor(seq, dtype=torch.long)
            mask[i, start : start + n] = 1
            v0 = start + len(plan.before)
            slots[i, v0 : v0 + plan.num_visual] = True
        device = next(self.backbone.parameters()).device
        embeds = input_embeddings(self.backbone)(ids.to(device))  # (b, t, d)
        num_slots = int(slots.sum())
        if num_slots:
            if visual is None or visual.shape[0] * visual.shape[1] != num_slots:
                raise ValueError(f"plans ask for {num_slots} visual tokens, got {None if visual is None else tuple(visual.shape)}")
            embeds = embeds.masked_scatter(slots.to(device).unsqueeze(-1), visual.to(embeds.dtype))
        return embeds, mask.to(device)

    # ---- pixels for a list of image inputs --------------------------------------------------
    def pixels(self, images: Sequence, start_index: int = 0, indices: Optional[Sequence[int]] = None) -> torch.Tensor:
        cfg = self.config.image_tower
        if cfg is None:
            raise RuntimeError(f"model {self.name!r} has no image tower")
        return images_to_tensor(images, cfg.image_size, cfg.mean, cfg.std, start_index, indices)

    # ---- user API (numpy in/out, batching, order) lives in mmembed.encoding -----------------
    def encode_text(self, texts, **kwargs):
        """(n, dim) float32 L2-normalized embeddings of a list of strings, in input order.
        Keywords: batch_size=32, dim (Matryoshka truncation, renormalized), instruction, progress, as_tensor, and
        against: 'texts' (the default) or 'images' (texts compared with pictures: they may borrow the pictures their
        words name, config.TextAgainst).
        (mmembed/encoding.py: batches are sorted by token length and the order restored.)"""
        from .encoding import encode_text

        return encode_text(self, texts, **kwargs)

    def encode_image(self, images, **kwargs):
        """(n, dim) embeddings of images: paths, PIL images or numpy arrays ((h, w[, 3|4]) uint8, uint16, or float in
        [0, 1] or [0, 255]). Same keywords as encode_text, and role: 'document' (the default: images a search ranks)
        or 'query' (images whose texts are ranked: labelling, zero-shot; config.ImageRole). A bad image raises
        ImageInputError naming its index."""
        from .encoding import encode_image

        return encode_image(self, images, **kwargs)

    def encode_appearance(self, images, **kwargs):
        """(n, C) float32 unit rows: the image tower's pooled features, the appearance channel of image -> image
        search (mmembed/appearance.py). Keywords: batch_size=32, progress."""
        from .appearance import encode_appearance

        return encode_appearance(self, images, **kwargs)

    def encode_image_and_appearance(self, images, **kwargs):
        """((n, dim) embeddings, (n, C) appearances) from one tower pass: what a collection stores for an image.
        Keywords as encode_image (mmembed/encoding.py)."""
        from .encoding import encode_image_and_appearance

        return encode_image_and_appearance(self, images, **kwargs)

    def encode(self, items, **kwargs):
        """(n, dim) embeddings of a mixed list: a str is text, a pathlib.Path / PIL image / array is an image, an
        (image, text) tuple is one fused embedding. Same keywords as encode_image."""
        from .encoding import encode_mixed

        return encode_mixed(self, items, **kwargs)

    def classify(self, images, labels, **kwargs):
        """Zero-shot labelling: per image, its top_k of `labels` (texts in any language) as LabelScore(label, score),
        best first; images are embedded as queries. Keywords: top_k=1, template ("a photo of a {}"), batch_size,
        progress (mmembed/classify.py)."""
        from .classify import classify

        return classify(self, images, labels, **kwargs)

    @staticmethod
    def similarity(a, b):
        """Cosine similarity (n_a, n_b) of two sets of L2-normalized embeddings: numpy or torch (a torch result
        when both are tensors; mixed inputs give numpy)."""
        if isinstance(a, torch.Tensor) != isinstance(b, torch.Tensor):
            a, b = (x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x) for x in (a, b))
        return a @ b.T

    def save(self, folder) -> None:
        from .serialization import save_model

        save_model(self, folder)
