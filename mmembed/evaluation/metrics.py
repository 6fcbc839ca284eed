"""Ranking metrics on a similarity matrix: pure numpy, exact, no model involved.

Every task reduces to `sim` (q, t): queries x targets, and `relevant` (q, t) bool: which targets
are correct for each query. Several correct targets per query are allowed (all captions of a
concept, identical texts): a query is answered at the rank of its BEST-scoring correct target.

Ties count against the model: the rank of a correct target is 1 + the number of WRONG targets
scoring >= it. A degenerate model that gives every target the same score therefore ranks last,
not first, and the result never depends on the order targets happen to be listed in.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)


def _check(sim: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sim = np.asarray(sim, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if sim.ndim != 2 or sim.shape != relevant.shape:
        raise ValueError(f"sim {sim.shape} and relevant {relevant.shape} must be the same 2-d shape (queries, targets)")
    if not np.isfinite(sim).all():
        raise ValueError("similarity matrix contains NaN or inf")
    missing = np.flatnonzero(~relevant.any(axis=1))
    if missing.size:
        raise ValueError(f"queries {missing[:10].tolist()} have no correct target; every query needs at least one")
    return sim, relevant


def first_relevant_rank(sim: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """(q,) int: 1-based rank of each query's best correct target (ties pessimistic)."""
    sim, relevant = _check(sim, relevant)
    best = np.where(relevant, sim, -np.inf).max(axis=1, keepdims=True)  # (q, 1) best correct score
    wrong_ahead = (~relevant & (sim >= best)).sum(axis=1)  # (q,) wrong targets at or above it
    return (1 + wrong_ahead).astype(np.int64)


def per_query_values(ranks: np.ndarray, metric: str) -> np.ndarray:
    """(q,) float: each query's contribution to `metric` ("acc" = "R@1", "R@k", "MRR"); the metric is
    their mean. The one definition of each metric: the means below and paired comparisons both use it."""
    ranks = np.asarray(ranks)
    if metric == "MRR":
        return 1.0 / ranks.astype(np.float64)
    k = 1 if metric == "acc" else int(metric[2:]) if metric.startswith("R@") and metric[2:].isdigit() else None
    if k is None:
        raise ValueError(f"no per-query form for metric {metric!r} (known: acc, MRR, R@k)")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return (ranks <= k).astype(np.float64)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries with a correct target in the top k (success@k, as in CLIP retrieval)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float(per_query_values(ranks, f"R@{k}").mean()) if len(ranks) else float("nan")


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    return float(per_query_values(ranks, "MRR").mean()) if len(ranks) else float("nan")


def retrieval_metrics(sim: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """{'R@1': .., 'R@5': .., 'R@10': .., 'MRR': ..} for queries x targets."""
    return retrieval_metrics_from_ranks(first_relevant_rank(sim, relevant), ks)


def retrieval_metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    out = {f"R@{k}": recall_at_k(ranks, k) for k in ks}
    out["MRR"] = mean_reciprocal_rank(ranks)
    return out


def top1_accuracy(sim: np.ndarray, relevant: np.ndarray) -> float:
    """Bitext mining / zero-shot classification accuracy: the top target is a correct one."""
    return recall_at_k(first_relevant_rank(sim, relevant), 1)


def relevance_from_keys(query_keys: Sequence[Sequence[str]], target_keys: Sequence[Sequence[str]]) -> np.ndarray:
    """(q, t) bool: a target is correct when it shares at least one key with the query.

    Keys are e.g. the concept id and, for texts, the normalised text, so two identical captions of
    different concepts are both right (no model can tell them apart). Built as a product of two
    sparse incidence matrices instead of q*t set intersections.
    """
    vocab: dict[str, int] = {}
    for keys in (*query_keys, *target_keys):
        for key in keys:
            vocab.setdefault(key, len(vocab))
    q = np.zeros((len(query_keys), len(vocab)), dtype=np.float32)  # (q, K) incidence
    t = np.zeros((len(target_keys), len(vocab)), dtype=np.float32)  # (t, K)
    for i, keys in enumerate(query_keys):
        q[i, [vocab[k] for k in keys]] = 1.0
    for j, keys in enumerate(target_keys):
        t[j, [vocab[k] for k in keys]] = 1.0
    return (q @ t.T) > 0  # (q, t)
