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
from .readout import embed_captions, pooled_training_features, readout_pictures


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
    pictures = readout_pictures(sources, memory.cfg.captions_per_image, seed)  # the read-out's sampling
    if not pictures:
        raise ValueError("neighbour captions: the run's sources hold no pictures (image files or feature rows)")
    feats = pooled_training_features(model, pictures, progress=progress)  # (N, C)
    text_emb, caption_rows = embed_captions(model, pictures, progress=progress)  # (m, D)
    values = torch.stack([text_emb[rows].mean(dim=0) for rows in caption_rows])  # (N, D)
    memory.fill(feats, values)
    return NeighbourCaptionsReport(len(pictures), len(text_emb), round(time.perf_counter() - t0, 1))
