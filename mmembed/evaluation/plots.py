"""PNG plots of an evaluation run (matplotlib, Agg backend: no display needed).

  {task}_by_language.png  one panel per dataset; per language, one bar per encoder (primary metric)
  similarity_heatmap.png  one panel per encoder: the same queries x their correct targets

Labels are in every script the datasets caption in; `fonts` supplies the fallback fonts.
"""
from __future__ import annotations

import contextlib
import unicodedata
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .fonts import font_families, missing_fonts
from ..paths import write_atomically
from .output import HEATMAP_FILE, plot_file
from .report import primary_metric
from .runner import EvalRun, SimilarityPreview

# PNG metadata without the matplotlib version: the same run writes the same bytes
_PNG_META = {"Software": None}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # called only when plotting: importing mmembed changes nothing
    import matplotlib.pyplot as plt

    return plt


def _short(label: str, n: int = 18) -> str:
    """At most n characters, cut between whole syllables: a cut never leaves a vowel sign, virama
    or other combining mark (Unicode category M*) without its base, nor ends on a joiner."""
    if len(label) <= n:
        return label
    cut = n - 1
    # a virama (canonical combining class 9, in every Indic script) or a joiner binds to what follows
    while cut > 1 and (unicodedata.category(label[cut]).startswith("M")
                       or unicodedata.combining(label[cut - 1]) == 9 or label[cut - 1] == "\u200d"):
        cut -= 1
    return label[:cut] + "…"


def plot_by_language(run: EvalRun, task: str, path: Path) -> Path:
    plt = _pyplot()
    metric = primary_metric(task)
    encoders = [e.name for e in run.encoders]
    per_ds: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))  # ds -> group -> enc
    for r in run.results:
        if r.task == task and r.status == "ok":
            per_ds[r.dataset][r.group][r.encoder] = r.metrics[metric]
    datasets = sorted(per_ds)
    widest = max((len(g) for d in per_ds.values() for g in d), default=1)
    n_groups = max((len(d) for d in per_ds.values()), default=1)
    fig, axes = plt.subplots(max(1, len(datasets)), 1, squeeze=False,
                             figsize=(max(6.0, 0.35 * n_groups * max(1, len(encoders)) + 2), 3.2 * max(1, len(datasets))))
    width = 0.8 / max(1, len(encoders))
    for ax, ds in zip(axes[:, 0], datasets or [""]):
        groups = sorted(per_ds.get(ds, {}))
        x = np.arange(len(groups))
        for i, enc in enumerate(encoders):
            vals = [100 * per_ds[ds][g].get(enc, np.nan) for g in groups]
            ax.bar(x + (i - (len(encoders) - 1) / 2) * width, vals, width, label=enc)
        ax.set_xticks(x, groups, rotation=90 if widest > 6 or len(groups) > 20 else 0, fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(f"{task} on {ds}" if ds else f"{task}: no results")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncols=min(4, max(1, len(encoders))), loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=_PNG_META)
    plt.close(fig)
    return path


def plot_heatmap(previews: Sequence[SimilarityPreview], path: Path) -> Path:
    plt = _pyplot()
    n = max(1, len(previews))
    fig, axes = plt.subplots(1, n, squeeze=False, figsize=(4.8 * n, 4.8))
    for ax, pv in zip(axes[0], previews):
        values = np.asarray(pv.values)  # (k, k')
        im = ax.imshow(values, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(pv.cols)), [_short(c) for c in pv.cols], rotation=90, fontsize=7)
        ax.set_yticks(range(len(pv.rows)), [_short(r) for r in pv.rows], fontsize=7)
        ax.set_title(f"{pv.encoder}\n{pv.task_id}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if not previews:
        axes[0, 0].set_title("no encoder could embed the preview task")
        axes[0, 0].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=_PNG_META)
    plt.close(fig)
    return path


@contextlib.contextmanager
def label_fonts() -> Iterator[list[str]]:
    """matplotlib settings under which CJK, Indic, Arabic... labels draw as glyphs, not boxes."""
    plt = _pyplot()
    families = font_families()  # one MissingFontWarning, naming the packages, if fonts are absent
    with plt.rc_context({"font.family": families}), warnings.catch_warnings():
        if missing_fonts():
            # the warning above said which scripts and how to fix it; one more per glyph is noise
            warnings.filterwarnings("ignore", message="Glyph .* missing from")
        yield families


def write_plots(run: EvalRun, out: Path) -> list[Path]:
    """Each plot drawn to a temporary name and renamed into place: never a half-written PNG."""
    out.mkdir(parents=True, exist_ok=True)
    with label_fonts():
        tasks = dict.fromkeys(r.task for r in run.results)
        paths = [write_atomically(out / plot_file(task), lambda tmp, task=task: plot_by_language(run, task, tmp))
                 for task in tasks]
        paths.append(write_atomically(out / HEATMAP_FILE, lambda tmp: plot_heatmap(run.previews, tmp)))
    return paths
