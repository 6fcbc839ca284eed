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
stay small enough to ship, ~4 MB for 7k pictures at p = 256, fp16; memory_bits = 8 stores keys and values as int8
with a scale per row, half that). Empty (size 0) it adds nothing.

Read the other way (text_weight > 0, session 45), the memory lets a TEXT borrow the pictures its words name:
mmembed.neighbour_pictures (its `texts` part) keeps caption keys and the pictures' document embeddings; a text
compared with images (encode_text(..., against="images"), config.TextAgainst) adds the pictures of its nearest caption
keys. Texts compared with texts never pass through it.
`mmembed.training.neighbours.build_neighbour_captions` fills it from a run's pictures with the model's own text path,
so it belongs to that text space: the trainer rebuilds it when a recipe has a [neighbour_captions] table and drops it
(with a warning) when a run changes the text side without one.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch
from torch import nn

from .config import ImageRole, NeighbourCaptionsConfig, role_weight
from .feature_readout import pooled_features
from .neighbour_pictures import NeighbourPictures, int8_rows, principal_basis, scaled_rows, scaled_scores


class NeighbourCaptions(nn.Module):
    def __init__(self, cfg: NeighbourCaptionsConfig, in_channels: int, dim: int):
        super().__init__()
        p = min(cfg.key_dims or in_channels, in_channels)  # a tower with fewer channels keeps them all
        self.cfg = cfg
        # fp16 or int8 (memory_bits): the memory is shipped with the adapter; scores are computed in float32
        stored = torch.int8 if cfg.memory_bits == 8 else torch.float16
        self.register_buffer("key_mean", torch.zeros(in_channels))  # (C,) mean of the memory's unit features
        self.register_buffer("key_basis", torch.eye(in_channels, p, dtype=torch.float16))  # (C, p)
        self.register_buffer("keys", torch.zeros(cfg.size, p, dtype=stored))  # (N, p) unit rows (/ key_scale)
        self.register_buffer("values", torch.zeros(cfg.size, dim, dtype=stored))  # (N, D) unit rows (/ value_scale)
        if cfg.memory_bits == 8:  # a row is its int8 entries times its scale
            self.register_buffer("key_scale", torch.zeros(cfg.size, dtype=torch.float16))  # (N,)
            self.register_buffer("value_scale", torch.zeros(cfg.size, dtype=torch.float16))  # (N,)
        self.text_paused = False  # set by paused_text_side: the model's plain text path (building, label tables)
        self.texts: Optional[NeighbourPictures] = None  # texts borrow pictures (text_weight > 0): built with the memory
        if cfg.text_weight > 0:
            self.texts = NeighbourPictures(dim, cfg.size, cfg.text_size, cfg.text_key_dims, cfg.text_picture_dims)

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
        sims = scaled_scores(self.key(pooled), self.keys, self._scale("key_scale"))  # (n, N)
        top = sims.topk(min(self.cfg.k, self.size), dim=-1)  # (n, k)
        weights = (top.values / self.cfg.temperature).softmax(dim=-1)  # (n, k)
        mixed = (weights.unsqueeze(-1) * self.memory_values(top.indices)).sum(dim=1)  # (n, D): k rows each, not all N
        return nn.functional.normalize(mixed, dim=-1)

    def memory_values(self, rows: torch.Tensor) -> torch.Tensor:
        """(...) memory rows -> (..., D) their caption embeddings in float32 (unit rows, up to the int8 rounding)."""
        return scaled_rows(self.values, self._scale("value_scale"), rows)

    def _scale(self, name: str) -> Optional[torch.Tensor]:
        """The (N,) scales of the int8 rows (memory_bits 8); None for fp16 rows."""
        return getattr(self, name) if self.cfg.memory_bits == 8 else None

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

    @property
    def reads_texts(self) -> bool:
        """Whether texts borrow pictures now (a text weight, a built table, not paused)."""
        return self.texts is not None and self.cfg.text_weight > 0 and not self.text_paused and self.texts.built

    def on_text_rows(self, emb: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """(b, D) embeddings -> a copy with the borrowed pictures added to `rows` (texts alone); unchanged (the same
        tensor) when texts borrow nothing."""
        if not rows or not self.reads_texts:
            return emb
        out = emb.clone()
        text = emb[rows].float()
        mixed = self.texts.mix(text, self.cfg.text_k, self.cfg.text_temperature, self.cfg.text_tied_keys).to(text.device)
        out[rows] = nn.functional.normalize(text + self.cfg.text_weight * mixed, dim=-1).to(emb.dtype)
        return out

    @torch.no_grad()
    def fill_texts(self, key_emb: torch.Tensor, key_picture: torch.Tensor, picture_emb: torch.Tensor) -> None:
        """Set what texts borrow: (M, D) caption keys (plain text path), (M,) the memory picture of each, and (N, D)
        the memory pictures' document embeddings in the memory's row order. The config's `text_size` follows."""
        if self.cfg.text_weight <= 0:
            raise ValueError("neighbour captions: text_weight is 0, so texts borrow no pictures (nothing to fill)")
        if len(picture_emb) != self.size:
            raise ValueError(f"neighbour captions: one picture embedding per memory picture ({self.size}), got "
                             f"{len(picture_emb)}")
        texts = NeighbourPictures(self.values.shape[1], self.size, len(key_emb), self.cfg.text_key_dims,
                                  self.cfg.text_picture_dims).to(self.key_mean.device)
        texts.fill(key_emb, key_picture, picture_emb)
        self.texts = texts
        self.cfg.text_size = len(key_emb)

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
        basis = principal_basis(centred, self.key_basis.shape[1])  # (C, p); fewer pictures than p: zero-padded
        device = self.key_mean.device  # the model's (a trainer on a GPU builds from CPU features)
        self.key_mean = mean.to(device)
        self.key_basis = basis.to(device, torch.float16)
        keys = nn.functional.normalize(centred @ basis.half().float(), dim=-1)  # (N, p)
        values = nn.functional.normalize(values.float(), dim=-1)  # (N, D)
        if self.cfg.memory_bits == 8:
            (keys, key_scale), (values, value_scale) = int8_rows(keys), int8_rows(values)
            self.key_scale, self.value_scale = key_scale.to(device), value_scale.to(device)
        self.keys, self.values = keys.to(device, self.keys.dtype), values.to(device, self.values.dtype)
        self.cfg.size = len(pooled)
        if self.cfg.text_weight > 0:  # the old table belongs to the old pictures: empty until fill_texts
            self.texts = NeighbourPictures(values.shape[1], len(pooled), 0, self.cfg.text_key_dims,
                                           self.cfg.text_picture_dims).to(device)
            self.cfg.text_size = 0


def texts_borrow_pictures(model) -> bool:
    """Whether the model's texts compared with images borrow pictures now (a built picture table, not paused): when
    not, encode_text gives the same vectors against texts and against images."""
    memory = getattr(model, "neighbour_captions", None)
    return memory is not None and memory.reads_texts


@contextmanager
def paused_text_side(model):
    """Within it the model's texts borrow no pictures: the plain text path that builds the memory's values and
    the label prior's table (the borrowed pictures are themselves built from them)."""
    memory = getattr(model, "neighbour_captions", None)
    if memory is None:
        yield
        return
    was, memory.text_paused = memory.text_paused, True
    try:
        yield
    finally:
        memory.text_paused = was
