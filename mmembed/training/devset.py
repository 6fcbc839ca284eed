"""Quick dev-set scores during training: caption -> anchor R@1 per language on held-out concepts.

A small, deterministic subset (first `max_concepts` concepts by id) so it costs seconds; the full
benchmark is `mmembed eval`. Anchors are images, texts or feature-table rows (e.g. ImageNet class
prototypes), embedded exactly as training embeds them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.manifest import read_manifest, resolve_features, resolve_image
from ..evaluation.metrics import first_relevant_rank, recall_at_k
from .config import DevSpec


@dataclass
class DevSet:
    """A loaded dev set: anchors of the first `max_concepts` concepts and one caption per
    (concept, language). Built once, when training starts, so a wrong path, kind or language
    list stops the run before its first step, not at its first evaluation."""

    spec: DevSpec
    ids: list[str]  # concept ids, sorted
    anchors: list[object]  # per id: image path, text, or FeatureRef
    anchor_kind: str  # "features" | "image" | "text"
    captions: dict[str, list[tuple[str, str]]]  # lang -> [(concept, caption)], first per concept


def load_dev_set(spec: DevSpec) -> DevSet:
    where = f"dev set {spec.name!r} ({spec.path})"
    if not Path(spec.path).is_file():
        raise FileNotFoundError(f"{where}: no such file")
    every = read_manifest(spec.path)
    records = [r for r in every if r.kind in spec.kinds]
    if not records:
        present = sorted({r.kind for r in every})
        raise ValueError(f"{where} has no records of kinds {spec.kinds}; it has kinds {present}: "
                         f"set `kinds = [...]` in its [[dev]] section")
    keep = set(sorted({r.concept for r in records})[: spec.max_concepts])
    anchors: dict[str, object] = {}
    captions: dict[str, list[tuple[str, str]]] = {}
    seen = set()
    for r in records:
        if r.concept not in keep:
            continue
        anchors.setdefault(r.concept, _anchor(spec.path, r))
        if r.lang in spec.langs and (r.concept, r.lang) not in seen:
            seen.add((r.concept, r.lang))
            captions.setdefault(r.lang, []).append((r.concept, r.caption))
    if not captions:
        present = sorted({r.lang for r in records})
        raise ValueError(f"{where} has no captions in langs {spec.langs} (kinds {spec.kinds}); "
                         f"its languages include {present[:20]}")
    first = records[0]
    kind = "features" if first.features is not None else "image" if first.image is not None else "text"
    ids = sorted(anchors)
    return DevSet(spec, ids, [anchors[c] for c in ids], kind, dict(sorted(captions.items())))


def dev_metrics(model, dev: DevSet | DevSpec) -> dict[str, float]:
    """R@1 per language (and their mean) of captions -> anchors among the dev set's anchors."""
    if isinstance(dev, DevSpec):
        dev = load_dev_set(dev)
    if dev.anchor_kind == "features":
        anchor_emb = encode_feature_anchors(model, dev.anchors)
    elif dev.anchor_kind == "image":
        anchor_emb = model.encode_image(dev.anchors)
    else:
        anchor_emb = model.encode_text(dev.anchors)
    out = {}
    for lang, pairs in dev.captions.items():
        q = model.encode_text([c for _, c in pairs])
        relevant = np.array([[c == a for a in dev.ids] for c, _ in pairs])
        out[f"R@1_{lang}"] = round(recall_at_k(first_relevant_rank(q @ anchor_emb.T, relevant), 1), 4)
    out["R@1_mean"] = round(float(np.mean(list(out.values()))), 4)
    return out


def _anchor(manifest, record):
    if record.features is not None:
        return resolve_features(manifest, record)
    return str(resolve_image(manifest, record)) if record.image else record.text


def encode_feature_anchors(model, refs, chunk: int = 32) -> np.ndarray:
    """(n, D) float32 embeddings of feature-table rows (no encode_* API takes features)."""
    from .embedder import PairEmbedder

    embedder = PairEmbedder(model, chunk=chunk)
    with torch.no_grad():
        parts = [embedder.feature_anchors(refs[s : s + chunk]) for s in range(0, len(refs), chunk)]
    return torch.cat(parts).float().cpu().numpy()
