"""Is encoder A really ahead of encoder B? A paired bootstrap over concepts, with a 95% interval.

Test sets here are small (70-120 concepts per language), and one concept is scored in every
language and direction, so per-query outcomes are not independent: a name both encoders find hard
is hard in all 18 bitext directions. The interval therefore resamples CONCEPTS (clusters), not
queries: each bootstrap draw picks concepts with replacement, every query of a drawn concept
counts as often as the concept was drawn, each group's (language's) metric is recomputed, and the
difference of the means over groups (the number the summary table shows) is taken. Both encoders
see the same draws (paired), so what is shared between them cancels.

Datasets that measure one thing but are each too small (three photo sets of 10-18 photos) can be
POOLED: `pool_results` merges their per-query outcomes per (task, encoder, language) into one result
named after the pool. Each query keeps the rank it got among its own dataset's targets; the
resampled units are (dataset, concept), so the interval is the one a single larger set would give.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from .metrics import per_query_values
from .runner import TaskResult
from .tasks import TASK_KINDS

CONFIDENCE = 0.95
MIN_DRAWS = 100  # fewer draws cannot place the 2.5th/97.5th percentiles (one draw gives a zero-width "interval")


@dataclass(frozen=True)
class PairedDifference:
    """`encoder` minus `reference` on the mean over groups of one metric, with its bootstrap interval."""

    task: str
    dataset: str
    metric: str
    encoder: str
    reference: str
    difference: float  # observed, on the full test set (encoder - reference)
    low: float  # 2.5th percentile of the resampled differences
    high: float  # 97.5th percentile
    share_ahead: float  # fraction of draws where encoder > reference
    concepts: int  # resampled units (concepts, or images without a concept)
    draws: int

    @property
    def verdict(self) -> str:
        """"ahead" / "behind" when the 95% interval excludes 0, else "level"."""
        return "ahead" if self.low > 0 else "behind" if self.high < 0 else "level"


def paired_bootstrap(
    values_a: Sequence[np.ndarray],
    values_b: Sequence[np.ndarray],
    units: Sequence[Sequence[str]],
    draws: int = 1000,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """Observed difference of means over groups, and its `draws` resampled values.

    values_a[g], values_b[g]: (q_g,) per-query values of the two encoders on group g's queries;
    units[g]: (q_g,) the concept each query belongs to. A draw where a group got no query at all
    leaves that group out of that draw's mean.
    """
    if not (len(values_a) == len(values_b) == len(units)) or not units:
        raise ValueError(f"need the same, non-zero number of groups: {len(values_a)}, {len(values_b)}, {len(units)}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    index = {u: i for i, u in enumerate(dict.fromkeys(u for group in units for u in group))}
    n_units = len(index)
    counts = np.random.default_rng(seed).multinomial(n_units, np.full(n_units, 1.0 / n_units), size=draws)  # (draws, C)
    diff_sum = np.zeros(draws)
    groups_seen = np.zeros(draws)
    observed = []
    for a, b, group in zip(values_a, values_b, units):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if not (a.shape == b.shape == (len(group),)):
            raise ValueError(f"per-query values {a.shape} / {b.shape} do not match the group's {len(group)} queries")
        cols = np.array([index[u] for u in group])
        per_unit_diff = np.bincount(cols, weights=a - b, minlength=n_units)  # (C,)
        per_unit_n = np.bincount(cols, minlength=n_units).astype(np.float64)  # (C,)
        n = counts @ per_unit_n  # (draws,) queries of this group in each draw
        ok = n > 0
        diff_sum[ok] += (counts @ per_unit_diff)[ok] / n[ok]
        groups_seen += ok
        observed.append(float(np.mean(a - b)))
    return float(np.mean(observed)), diff_sum / np.maximum(groups_seen, 1)


def pool_results(results: Sequence[TaskResult], pools: Mapping[str, Sequence[str]]) -> list[TaskResult]:
    """One result per (pool, task, encoder, group) from the pool's datasets that scored that group:
    per-query ranks concatenated (each ranked within its own dataset), metrics recomputed from them,
    units `dataset/concept`. Groups and encoders that no dataset of a pool scored are left out."""
    out = []
    for pool, members in pools.items():
        parts: dict[tuple[str, str, str], list[TaskResult]] = defaultdict(list)
        for r in results:
            if r.dataset in members and r.status == "ok" and r.query_ranks is not None:
                parts[r.task, r.encoder, r.group].append(r)
        for (task, encoder, group), rs in parts.items():
            ranks = np.concatenate([np.asarray(r.query_ranks) for r in rs])
            units = tuple(f"{r.dataset}/{u}" for r in rs for u in r.query_units)
            out.append(TaskResult(
                encoder, task, pool, group,
                metrics={m: round(float(per_query_values(ranks, m).mean()), 6) for m in rs[0].metrics},
                n_queries=len(ranks), n_targets=sum(r.n_targets for r in rs),
                note=f"pooled over {', '.join(r.dataset for r in rs)}; each query ranked among its own dataset's targets",
                query_ranks=tuple(int(x) for x in ranks), query_units=units))
    return out


def compare_encoders(
    results: Sequence[TaskResult],
    subject: str,
    draws: int = 1000,
    seed: int = 0,
    metrics_for: Callable[[str], Sequence[str]] | None = None,
) -> list[PairedDifference]:
    """`subject` (the model under test) minus every other encoder, per (task, dataset) and metric,
    on the groups both scored; the other encoder is the `reference` of each difference."""
    metrics_for = metrics_for or default_metrics
    by_key: dict[tuple[str, str], dict[str, dict[str, TaskResult]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        if r.status == "ok" and r.query_ranks is not None:
            by_key[r.task, r.dataset][r.encoder][r.group] = r
    out = []
    for (task, dataset), per_encoder in by_key.items():
        mine = per_encoder.get(subject)
        if mine is None:
            continue
        for reference, theirs in per_encoder.items():
            shared = [g for g in mine if g in theirs]
            if reference == subject or not shared:
                continue
            units = [mine[g].query_units for g in shared]
            n_units = len({u for group in units for u in group})
            for metric in metrics_for(task):
                observed, resampled = paired_bootstrap(
                    [per_query_values(mine[g].query_ranks, metric) for g in shared],
                    [per_query_values(theirs[g].query_ranks, metric) for g in shared], units, draws=draws, seed=seed)
                low, high = np.percentile(resampled, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
                out.append(PairedDifference(task, dataset, metric, subject, reference, round(observed, 6),
                                            round(float(low), 6), round(float(high), 6),
                                            round(float(np.mean(resampled > 0)), 6), n_units, draws))
    return out


def default_metrics(task: str) -> tuple[str, ...]:
    """Bitext / zero-shot: accuracy; retrieval: R@1 and R@10 (the two the quality targets name)."""
    return ("acc",) if TASK_KINDS[task].metric == "accuracy" else ("R@1", "R@10")
