"""Filling a model's neighbour-caption memory (mmembed.neighbour_captions) from a run's training pictures.

Each picture of the run's sources (once, however many captions it has; the feature read-out's sampling) becomes one
memory row: its pooled tower features as the key, the model's own mean embedding of a seeded sample of its captions
as the value. Only the frozen tower and the text path are read, so building it trains nothing (7,141 pictures and
~57k captions: ~6 min on 2 CPU cores, nearly all of it embedding the captions). With a text weight (texts borrow
pictures), each picture's document embedding is then stored too (after the memory is filled, so it includes its own
neighbour captions): ~3 more minutes for 6k image files. The captions are embedded by the plain text path (texts
borrowing nothing), since what texts borrow is built from them.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Sequence, get_args

import torch

from ..config import KeyDraw
from ..model import MMEmbedModel
from .pairs import PairSource
from .readout import (ReadoutPicture, backbone_image_embeddings, embed_captions, plain_text_embeddings,
                      pooled_training_features, readout_pictures)


@dataclass(frozen=True)
class NeighbourCaptionsReport:
    pictures: int
    captions: int  # distinct captions embedded
    text_keys: int  # caption keys texts look up (0: texts borrow no pictures)
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
    keys = 0
    if memory.cfg.text_weight > 0:  # after fill: a picture's document embedding includes its neighbour captions
        found = caption_keys(sources, pictures, memory.cfg.text_langs, seed, memory.cfg.text_key_draw)
        if not found.texts:
            raise ValueError(f"neighbour captions: the run's pictures have no captions in text_langs "
                             f"{list(memory.cfg.text_langs)}")
        distinct = sorted(set(found.texts))  # a caption two pictures share is embedded once
        key_emb = plain_text_embeddings(model, distinct, progress)
        row = {t: i for i, t in enumerate(distinct)}
        picture_emb = backbone_image_embeddings(model, pictures, progress=progress, with_readout=True)
        memory.fill_texts(key_emb[[row[t] for t in found.texts]], torch.tensor(found.rows), picture_emb)
        keys = len(found.texts)
    return NeighbourCaptionsReport(len(pictures), len(text_emb), keys, round(time.perf_counter() - t0, 1))


@dataclass(frozen=True)
class CaptionKeys:
    """The caption keys of a memory's pictures, one entry per key."""
    texts: list[str]
    rows: list[int]  # the memory picture of each
    langs: list[str]  # the language of each


def caption_keys(sources: Sequence[PairSource], pictures: Sequence[ReadoutPicture], langs: Sequence[str],
                 seed: int, draw: KeyDraw = "joint") -> CaptionKeys:
    """One caption per memory picture and language of `langs` that it has (a seeded pick among its captions in that
    language): from one sequence over pictures x languages ("joint"), or from one per language ("per_language",
    seeded by the seed and the language, so the other languages of `langs` do not change a language's keys); or,
    with "all", every caption it has in each language (nothing drawn, so the seed does not matter)."""
    if draw not in get_args(KeyDraw):
        raise ValueError(f"caption keys: draw must be one of {', '.join(get_args(KeyDraw))}, got {draw!r}")
    by_anchor: dict[object, dict[str, set[str]]] = {}
    for src in sources:
        for concept in src.concepts:
            for lang, pairs in src.by_concept[concept].items():
                if lang in langs:
                    for pair in pairs:
                        anchor = pair.image if pair.image is not None else pair.features
                        if anchor is not None:
                            by_anchor.setdefault(anchor, {}).setdefault(lang, set()).add(pair.positive)
    joint = random.Random(seed)
    rngs = {lang: joint if draw == "joint" else random.Random(f"{seed}:{lang}") for lang in langs}
    keys = CaptionKeys([], [], [])
    for row, picture in enumerate(pictures):
        captions = by_anchor.get(picture.image if picture.image is not None else picture.features, {})
        for lang in langs:
            if captions.get(lang):
                texts = sorted(captions[lang]) if draw == "all" else [rngs[lang].choice(sorted(captions[lang]))]
                keys.texts.extend(texts)
                keys.rows.extend([row] * len(texts))
                keys.langs.extend([lang] * len(texts))
    return keys
