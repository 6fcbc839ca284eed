"""Quick dev-set scores during training: caption -> anchor R@1 per language on held-out concepts.

A small, deterministic subset (first `max_concepts` concepts by id) so it costs seconds; the full
benchmark is `mmembed eval`. Anchors are images, texts or feature-table rows (e.g. ImageNet class
prototypes), embedded exactly as training embeds them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.manifest import read_manifest, resolve_features, resolve_image
from ..evaluation.metrics import first_relevant_rank, recall_at_k
from .config import DevSpec


def dev_metrics(model, spec: DevSpec) -> dict[str, float]:
    records = [r for r in read_manifest(spec.path) if r.kind in spec.kinds]
    concepts = sorted({r.concept for r in records})[: spec.max_concepts]
    keep = set(concepts)
    anchors: dict[str, object] = {}
    captions: dict[str, list[tuple[str, str]]] = {}  # lang -> [(concept, caption)], first per concept
    seen = set()
    for r in records:
        if r.concept not in keep:
            continue
        anchors.setdefault(r.concept, _anchor(spec.path, r))
        if r.lang in spec.langs and (r.concept, r.lang) not in seen:
            seen.add((r.concept, r.lang))
            captions.setdefault(r.lang, []).append((r.concept, r.caption))
    ids = list(anchors)
    if not ids:
        raise ValueError(f"dev set {spec.path} has no records of kinds {spec.kinds}")
    first = records[0]
    if first.features is not None:
        anchor_emb = _encode_feature_anchors(model, [anchors[c] for c in ids])
    elif first.image is not None:
        anchor_emb = model.encode_image([anchors[c] for c in ids])
    else:
        anchor_emb = model.encode_text([anchors[c] for c in ids])
    out = {}
    for lang, pairs in sorted(captions.items()):
        q = model.encode_text([c for _, c in pairs])
        relevant = np.array([[c == a for a in ids] for c, _ in pairs])
        out[f"R@1_{lang}"] = round(recall_at_k(first_relevant_rank(q @ anchor_emb.T, relevant), 1), 4)
    if out:
        out["R@1_mean"] = round(float(np.mean(list(out.values()))), 4)
    return out


def _anchor(manifest, record):
    if record.features is not None:
        return resolve_features(manifest, record)
    return str(resolve_image(manifest, record)) if record.image else record.text


def _encode_feature_anchors(model, refs, chunk: int = 32) -> np.ndarray:
    """(n, D) float32 embeddings of feature-table rows (no encode_* API takes features)."""
    from .embedder import PairEmbedder

    embedder = PairEmbedder(model, chunk=chunk)
    with torch.no_grad():
        parts = [embedder.feature_anchors(refs[s : s + chunk]) for s in range(0, len(refs), chunk)]
    return torch.cat(parts).float().cpu().numpy()
