"""Results as a rich table in the terminal and as JSON on disk.

results.json holds only what is determined by the inputs and the seed (no timings, no dates), so
two runs with the same seed write byte-identical files; timings and versions go to run.json.
"""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from .compare import PairedDifference
from .output import RESULTS_FILE, RUN_FILE, write_json  # noqa: F401  (re-exported: where callers look for them)
from .runner import EvalRun, TaskResult
from .tasks import TASK_KINDS


def primary_metric(task: str) -> str:
    return "acc" if TASK_KINDS[task].metric == "accuracy" else "R@1"


def summarize(results: Sequence[TaskResult]) -> list[dict[str, Any]]:
    """Mean of every metric over the groups (languages) of each (encoder, task, dataset)."""
    groups: dict[tuple[str, str, str], list[TaskResult]] = defaultdict(list)
    for r in results:
        if r.status == "ok":
            groups[r.encoder, r.task, r.dataset].append(r)
    out = []
    for (enc, task, ds), rs in groups.items():
        mean = {m: round(sum(r.metrics[m] for r in rs) / len(rs), 6) for m in rs[0].metrics}
        out.append({"encoder": enc, "task": task, "dataset": ds, "groups": len(rs), "mean": mean})
    return out


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _row_cells(values: dict[str, float], encoders: Sequence[str]) -> list[str]:
    """Percent cells, the best one in bold; '-' where an encoder was skipped."""
    best = max(values.values()) if values else None
    return [("[bold]" + _pct(values[e]) + "[/]" if values[e] == best else _pct(values[e])) if e in values else "-"
            for e in encoders]


def task_tables(run: EvalRun) -> list[Table]:
    """One table per task kind: rows = (dataset, language), columns = encoders, cell = primary metric."""
    encoders = [e.name for e in run.encoders]
    tables = []
    for task in dict.fromkeys(r.task for r in run.results):
        metric = primary_metric(task)
        table = Table(title=f"{task}: {TASK_KINDS[task].description} ({metric}, %)", title_justify="left")
        table.add_column("dataset")
        table.add_column("lang")
        table.add_column("n", justify="right")
        for e in encoders:
            table.add_column(e, justify="right", overflow="fold")  # long model names wrap, never cut
        rows: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        sizes: dict[tuple[str, str], str] = {}
        for r in run.results:
            if r.task == task:
                sizes[r.dataset, r.group] = f"{r.n_queries}x{r.n_targets}"
                if r.status == "ok":
                    rows[r.dataset, r.group][r.encoder] = r.metrics[metric]
        for (ds, group), size in sizes.items():
            table.add_row(ds, group, size, *_row_cells(rows[ds, group], encoders))
        tables.append(table)
    return tables


def summary_table(run: EvalRun) -> Table:
    """Means over languages of every metric: rows = (task, dataset, metric), columns = encoders."""
    encoders = [e.name for e in run.encoders]
    table = Table(title="mean over languages (%)", title_justify="left")
    for col in ("task", "dataset", "metric"):
        table.add_column(col)
    for e in encoders:
        table.add_column(e, justify="right", overflow="fold")
    cells: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for s in summarize(run.results):
        for metric, value in s["mean"].items():
            cells[s["task"], s["dataset"], metric][s["encoder"]] = value
    for (task, ds, metric), values in cells.items():
        table.add_row(task, ds, metric, *_row_cells(values, encoders))
    return table


def comparison_table(diffs: Sequence[PairedDifference]) -> Table:
    """Model minus each baseline, in points, with the 95% interval of a paired bootstrap over concepts."""
    subject = diffs[0].encoder if diffs else "model"
    table = Table(title=f"{subject} minus each other encoder (points; 95% interval, paired bootstrap over concepts)",
                  title_justify="left")
    for col in ("task", "dataset", "metric", "vs", "difference", "95% interval", "verdict"):
        table.add_column(col, justify="right" if col in ("difference", "95% interval") else "left", overflow="fold")
    style = {"ahead": "[green]ahead[/]", "behind": "[red]behind[/]", "level": "level"}
    for d in diffs:
        table.add_row(d.task, d.dataset, d.metric, d.reference, f"{100 * d.difference:+.1f}",
                      f"[{100 * d.low:+.1f}, {100 * d.high:+.1f}]", style[d.verdict])
    return table


_PER_QUERY_FIELDS = ("query_ranks", "query_units")  # in memory for comparisons, not in results.json


def results_payload(run: EvalRun, settings: dict[str, Any], datasets: list[dict[str, Any]], notes: list[str],
                    comparisons: Sequence[PairedDifference] = ()) -> dict[str, Any]:
    return {
        "format": "mmembed-eval/1",
        "settings": settings,
        "datasets": datasets,
        "encoders": [{"name": e.name, **e.info} for e in run.encoders],
        "results": [{k: v for k, v in dataclasses.asdict(r).items() if k not in _PER_QUERY_FIELDS} for r in run.results],
        "summary": summarize(run.results),
        "comparisons": [{**dataclasses.asdict(d), "verdict": d.verdict} for d in comparisons],
        "notes": notes,
        "similarity_previews": [dataclasses.asdict(p) for p in run.previews],
    }

