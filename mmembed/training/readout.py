"""Fitting the feature read-out (mmembed.feature_readout) on a run's image-text pairs.

The tower is frozen and the read-out never touches text, so everything the fit needs is computed once: each training
picture's pooled features (n, C) and the model's own embeddings of up to `fit_captions_per_image` of its captions.
Then `fit_steps` steps of symmetric InfoNCE (open_clip's ClipLoss, learnable temperature) between the read-out of a
batch of pictures and one caption of each, pictures drawn by source weight as the run draws its pairs. On 2 CPU
cores the steps take seconds; embedding the captions is the cost (about one text encode per caption).
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..data.feature_table import load_feature_table
from ..data.manifest import FeatureRef
from ..feature_readout import pooled_features
from ..model import MMEmbedModel
from ..vision import tower_channels
from .pairs import PairSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadoutPicture:
    """One training picture: an image file or a feature-table row, with its captions (all languages)."""

    source: int  # index into the run's sources
    image: Optional[str]
    features: Optional[FeatureRef]
    captions: tuple[str, ...]


@dataclass(frozen=True)
class ReadoutFitReport:
    pictures: int
    captions: int
    steps: int
    loss: float  # mean of the last 10 steps
    train_r1: float  # picture -> its first caption, R@1 among up to 1,000 training pictures (read-out alone)
    seconds: float


def readout_pictures(sources: Sequence[PairSource], captions_per_image: int, seed: int) -> list[ReadoutPicture]:
    """The sources' image-side anchors, each picture once (a picture in two sources, as a dataset and its
    ten-language copy, belongs to the first and has the captions of both), with a seeded sample of its captions."""
    rng = random.Random(seed)
    by_anchor: dict[object, tuple[int, Optional[str], Optional[FeatureRef], set[str]]] = {}
    for s, src in enumerate(sources):
        for concept in src.concepts:
            for lang in sorted(src.by_concept[concept]):
                for pair in src.by_concept[concept][lang]:
                    if pair.image is None and pair.features is None:
                        continue  # a text-text pair: nothing for the read-out
                    key = pair.image if pair.image is not None else pair.features
                    by_anchor.setdefault(key, (s, pair.image, pair.features, set()))[3].add(pair.positive)
    out = []
    for s, image, features, captions in by_anchor.values():
        unique = sorted(captions)
        chosen = unique if len(unique) <= captions_per_image else rng.sample(unique, captions_per_image)
        out.append(ReadoutPicture(s, image, features, tuple(chosen)))
    return out


def pooled_training_features(model: MMEmbedModel, pictures: Sequence[ReadoutPicture], batch_size: int = 64,
                             progress: bool = False) -> torch.Tensor:
    """(n, C) pooled tower features of the pictures: files through the frozen tower, feature rows as they are."""
    from tqdm.auto import tqdm

    channels = tower_channels(model.image_tower)
    out = torch.empty(len(pictures), channels)
    files = [i for i, p in enumerate(pictures) if p.image is not None]
    with torch.inference_mode():
        for s in tqdm(range(0, len(files), batch_size), desc="read-out: tower features", unit="batch",
                      disable=not progress):
            idx = files[s : s + batch_size]
            pixels = model.pixels([pictures[i].image for i in idx])
            out[idx] = pooled_features(model.image_features(pixels)).cpu()
    tables: dict[tuple[str, str], torch.Tensor] = {}
    for i, p in enumerate(pictures):
        if p.image is None:
            ref = p.features
            key = (ref.file, ref.tensor)
            if key not in tables:
                tables[key] = load_feature_table(ref.file, ref.tensor, channels=channels)
            out[i] = tables[key][ref.row]
    return out


def fit_feature_readout(model: MMEmbedModel, sources: Sequence[PairSource], *, seed: int = 0,
                        progress: bool = False) -> ReadoutFitReport:
    """Fit the model's feature read-out on the pictures of `sources` against the model's text embeddings of their
    captions. The model's other parts are not changed."""
    from open_clip.loss import ClipLoss

    readout = model.feature_readout
    if readout is None:
        raise ValueError(f"model {model.name!r} has no feature read-out to fit (config.feature_readout is None)")
    cfg = readout.cfg
    t0 = time.time()
    pictures = readout_pictures(sources, cfg.fit_captions_per_image, seed)
    if len(pictures) < 2:
        raise ValueError(f"fitting the feature read-out needs at least 2 pictures in the run's sources, got {len(pictures)}")
    feats = pooled_training_features(model, pictures, progress=progress)  # (n, C)
    texts = sorted({c for p in pictures for c in p.captions})
    text_emb = model.encode_text(texts, as_tensor=True, progress=progress).float()  # (m, D)
    row = {t: i for i, t in enumerate(texts)}
    caption_rows = [[row[c] for c in p.captions] for p in pictures]

    device = readout.feature_std.device
    readout.feature_mean.copy_(feats.mean(dim=0).to(device))
    readout.feature_std.copy_((feats.std(dim=0) + 1e-6).to(device))
    with torch.random.fork_rng(devices=[]):  # a refit starts afresh, the same for the same seed (the zero init
        torch.manual_seed(seed)               # of an unfitted read-out would not train: no gradient reaches W)
        for layer in (m for m in readout.map.modules() if isinstance(m, torch.nn.Linear)):
            layer.reset_parameters()
    gen = torch.Generator().manual_seed(seed)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = [*readout.map.parameters(), logit_scale]
    optimizer = torch.optim.AdamW(params, lr=cfg.fit_lr, weight_decay=cfg.fit_weight_decay)
    loss_fn = ClipLoss()
    by_source = [torch.tensor([i for i, p in enumerate(pictures) if p.source == s]) for s in range(len(sources))]
    weights = torch.tensor([src.weight if len(by_source[s]) else 0.0 for s, src in enumerate(sources)])
    batch = min(cfg.fit_batch_size, len(pictures))
    losses = []
    readout.train()
    with torch.enable_grad():
        for _ in range(cfg.fit_steps):
            idx = _draw(by_source, weights, batch, gen)  # (b,) distinct picture rows
            cap = torch.tensor([caption_rows[i][int(torch.randint(len(caption_rows[i]), (1,), generator=gen))]
                                for i in idx.tolist()])
            z = readout.read(feats[idx].to(device))  # (b, D)
            loss = loss_fn(z, text_emb[cap].to(device), logit_scale.exp().clamp(max=100))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    readout.eval()
    with torch.inference_mode():
        n = min(1000, len(pictures))
        z = readout.read(feats[:n].to(device))
        t = text_emb[[caption_rows[i][0] for i in range(n)]].to(device)
        sims = t @ z.T  # (n, n): caption -> pictures
        train_r1 = float((sims.argmax(dim=1) == torch.arange(n, device=device)).float().mean())
    report = ReadoutFitReport(len(pictures), len(texts), cfg.fit_steps, sum(losses[-10:]) / max(1, len(losses[-10:])),
                              train_r1, time.time() - t0)
    logger.info("feature read-out fitted: %s", report)
    return report


def _draw(by_source: Sequence[torch.Tensor], weights: torch.Tensor, batch: int, gen: torch.Generator) -> torch.Tensor:
    """`batch` distinct picture rows: each slot picks a source by weight, then a picture of it not yet drawn."""
    counts = torch.zeros(len(by_source), dtype=torch.long)
    choice = torch.multinomial(weights, batch, replacement=True, generator=gen)
    counts += torch.bincount(choice, minlength=len(by_source))
    rows = []
    for s, k in enumerate(counts.tolist()):
        pool = by_source[s]
        if k and len(pool):
            rows.append(pool[torch.randperm(len(pool), generator=gen)[: min(k, len(pool))]])
    return torch.cat(rows)
