"""Fitting the feature read-out (mmembed.feature_readout) on a run's image-text pairs.

The tower is frozen and the read-out never touches text, so everything the fit needs is computed once
(`ReadoutFitData`): each training picture's pooled features (n, C), its tower's classifier logits (the gate), the
model's own embeddings of up to `fit_captions_per_image` of its captions and, for `fit_target = "sum"`, the backbone
path's embedding of the picture. Then `fit_steps` steps of symmetric InfoNCE (open_clip's ClipLoss, learnable
temperature) between a batch of pictures and one caption of each, pictures drawn by source weight as the run draws
its pairs; a picture is its read-out alone ("readout") or the embedding the read-out makes with the backbone path
("sum"). On 2 CPU cores the steps take seconds; embedding the captions (and the pictures, for "sum") is the cost.
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
from ..feature_readout import add_readout, pooled_features
from ..neighbour_captions import paused_text_side
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
    train_r1: float  # caption -> its picture, R@1 among up to 1,000 training pictures (as fitted: alone or summed)
    seconds: float


@dataclass(frozen=True)
class ReadoutFitData:
    """What a fit needs, computed once (a weight sweep refits on the same data)."""

    pictures: list[ReadoutPicture]
    features: torch.Tensor  # (n, C) pooled tower features
    logits: torch.Tensor  # (n, K) the tower's classifier on them: the confidence gate's input
    text_emb: torch.Tensor  # (m, D) the model's embeddings of the sampled captions
    caption_rows: list[list[int]]  # per picture, its captions' rows of text_emb
    image_emb: Optional[torch.Tensor]  # (n, D) the backbone path's embeddings (label prior on files): "sum" only


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


def readout_fit_data(model: MMEmbedModel, sources: Sequence[PairSource], *, captions_per_image: int, seed: int,
                     image_embeddings: bool, progress: bool = False) -> ReadoutFitData:
    """Everything a read-out fit on `sources` needs; `image_embeddings` also embeds each picture through the
    backbone path (the "sum" target's e)."""
    pictures = readout_pictures(sources, captions_per_image, seed)
    if len(pictures) < 2:
        raise ValueError(f"fitting the feature read-out needs at least 2 pictures in the run's sources, got {len(pictures)}")
    feats = pooled_training_features(model, pictures, progress=progress)  # (n, C)
    device = model.logit_scale.device
    with torch.inference_mode():  # the head reads the global pool of a map: a 1 x 1 map of the pooled features
        logits = torch.cat([model.image_tower.forward_head(part.to(device)[:, :, None, None]).float().cpu()
                            for part in feats.split(1024)])  # (n, K)
    text_emb, caption_rows = embed_captions(model, pictures, progress=progress)
    image_emb = backbone_image_embeddings(model, pictures, progress=progress) if image_embeddings else None
    return ReadoutFitData(pictures, feats, logits, text_emb, caption_rows, image_emb)


def embed_captions(model: MMEmbedModel, pictures: Sequence[ReadoutPicture],
                   progress: bool = False) -> tuple[torch.Tensor, list[list[int]]]:
    """Each distinct caption of the pictures embedded once by the model's text path: (m, D) float32 embeddings and,
    per picture, its captions' rows."""
    texts = sorted({c for p in pictures for c in p.captions})
    text_emb = plain_text_embeddings(model, texts, progress)  # (m, D)
    row = {t: i for i, t in enumerate(texts)}
    return text_emb, [[row[c] for c in p.captions] for p in pictures]


def plain_text_embeddings(model: MMEmbedModel, texts: Sequence[str], progress: bool = False) -> torch.Tensor:
    """(m, D) float32 embeddings by the plain text path (texts borrowing no pictures): what captions mean to the
    read-out and the memory, which are themselves what texts borrow from."""
    with paused_text_side(model):
        return model.encode_text(list(texts), as_tensor=True, progress=progress).float()


def backbone_image_embeddings(model: MMEmbedModel, pictures: Sequence[ReadoutPicture],
                              progress: bool = False, with_readout: bool = False) -> torch.Tensor:
    """(n, D) the pictures' embeddings without the read-out (`with_readout`: with it, as an index holds them):
    files as encode_image embeds a document (label prior included), feature rows (no pixels) as the trainer embeds
    them."""
    from .devset import encode_feature_anchors

    out = torch.empty(len(pictures), model.dim)
    files = [i for i, p in enumerate(pictures) if p.image is not None]
    rows = [i for i, p in enumerate(pictures) if p.image is None]
    readout = model.feature_readout
    if not with_readout:
        model.feature_readout = None
    try:
        if files:
            out[files] = model.encode_image([pictures[i].image for i in files], as_tensor=True, progress=progress).float()
    finally:
        model.feature_readout = readout
    if rows:
        was_training = model.training
        model.eval()
        try:
            out[rows] = torch.from_numpy(encode_feature_anchors(model, [pictures[i].features for i in rows]))
        finally:
            model.train(was_training)
    return out


def fit_feature_readout(model: MMEmbedModel, sources: Sequence[PairSource], *, seed: int = 0,
                        progress: bool = False, data: Optional[ReadoutFitData] = None) -> ReadoutFitReport:
    """Fit the model's feature read-out on the pictures of `sources` against the model's text embeddings of their
    captions (`data`: computed beforehand by readout_fit_data, e.g. once for several weights). The model's other
    parts are not changed."""
    from open_clip.loss import ClipLoss

    readout = model.feature_readout
    if readout is None:
        raise ValueError(f"model {model.name!r} has no feature read-out to fit (config.feature_readout is None)")
    cfg = readout.cfg
    t0 = time.time()
    summed = cfg.fit_target == "sum"
    if summed and model.image_centering is not None:
        # centering applies after the read-out at inference, so e from encode_image (already centred) is not the e
        # the read-out is added to; the shipped models have no centering, so this is refused, not emulated
        raise ValueError(f"model {model.name!r} centres its image embeddings (image_centering); feature_readout."
                         "fit_target = 'sum' is not supported with it: use fit_target = 'readout'")
    if data is None:
        data = readout_fit_data(model, sources, captions_per_image=cfg.fit_captions_per_image, seed=seed,
                                image_embeddings=summed, progress=progress)
    if summed and data.image_emb is None:
        raise ValueError("feature_readout.fit_target = 'sum' needs the pictures' backbone embeddings "
                         "(readout_fit_data(..., image_embeddings=True))")
    pictures, feats, text_emb, caption_rows = data.pictures, data.features, data.text_emb, data.caption_rows

    device = readout.feature_std.device
    weight = readout.weights(len(pictures), data.logits, device)  # (n, 1): the weight each picture gets at inference

    def embed(idx: torch.Tensor) -> torch.Tensor:  # (b,) picture rows -> (b, D) as fitted
        z = readout.read(feats[idx].to(device))
        return add_readout(data.image_emb[idx].to(device), z, weight[idx]) if summed else z

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
    source_weights = torch.tensor([src.weight if len(by_source[s]) else 0.0 for s, src in enumerate(sources)])
    batch = min(cfg.fit_batch_size, len(pictures))
    losses = []
    readout.train()
    with torch.enable_grad():
        for _ in range(cfg.fit_steps):
            idx = _draw(by_source, source_weights, batch, gen)  # (b,) distinct picture rows
            cap = torch.tensor([caption_rows[i][int(torch.randint(len(caption_rows[i]), (1,), generator=gen))]
                                for i in idx.tolist()])
            loss = loss_fn(embed(idx), text_emb[cap].to(device), logit_scale.exp().clamp(max=100))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    readout.eval()
    with torch.inference_mode():
        n = min(1000, len(pictures))
        z = embed(torch.arange(n))
        t = text_emb[[caption_rows[i][0] for i in range(n)]].to(device)
        sims = t @ z.T  # (n, n): caption -> pictures
        train_r1 = float((sims.argmax(dim=1) == torch.arange(n, device=device)).float().mean())
    report = ReadoutFitReport(len(pictures), len(text_emb), cfg.fit_steps, sum(losses[-10:]) / max(1, len(losses[-10:])),
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
