"""Filling a model's neighbour-caption memory (mmembed.neighbour_captions) from a run's training pictures.

Each picture of the run's sources (once, however many captions it has; the feature read-out's sampling) becomes one
memory row: its pooled tower features as the key, the model's own mean embedding of a seeded sample of its captions
as the value. Only the frozen tower and the text path are read, so building it trains nothing (7,141 pictures and
~57k captions: ~6 min on 2 CPU cores, nearly all of it embedding the captions).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..model import MMEmbedModel
from .pairs import PairSource
from .readout import pooled_training_features, readout_pictures


@dataclass(frozen=True)
class NeighbourCaptionsReport:
    pictures: int
    captions: int  # distinct captions embedded
    seconds: float


def build_neighbour_captions(model: MMEmbedModel, sources: Sequence[PairSource], *, seed: int = 0,
                             progress: bool = False) -> NeighbourCaptionsReport:
    """Fill `model.neighbour_captions` with every picture of `sources` (at least one needed)."""
    memory = model.neighbour_captions
    if memory is None:
        raise ValueError(f"model {model.name!r} has no neighbour_captions to build (config.neighbour_captions is None)")
    t0 = time.perf_counter()
    pictures = readout_pictures(sources, memory.cfg.captions_per_image, seed)
    if not pictures:
        raise ValueError("neighbour captions: the run's sources hold no pictures (image files or feature rows)")
    feats = pooled_training_features(model, pictures, progress=progress)  # (N, C)
    texts = sorted({c for p in pictures for c in p.captions})
    text_emb = model.encode_text(texts, as_tensor=True, progress=progress).float().cpu()  # (m, D)
    row = {t: i for i, t in enumerate(texts)}
    values = torch.stack([text_emb[[row[c] for c in p.captions]].mean(dim=0) for p in pictures])  # (N, D)
    memory.fill(feats, values)
    return NeighbourCaptionsReport(len(pictures), len(texts), round(time.perf_counter() - t0, 1))
