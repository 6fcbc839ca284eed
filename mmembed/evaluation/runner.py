"""Run encoders over tasks: embed each side once, score the similarity matrix, collect results.

Encoders are built one at a time and dropped before the next, so two 270M models are never in
memory together. Within one encoder, embeddings are cached by (modality, role, item): the image
gallery of t2i is embedded once for every language, not once per language.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .encoders import Encoder, EncoderOptions, resolve_encoder
from .metrics import first_relevant_rank, recall_at_k, relevance_from_keys, retrieval_metrics_from_ranks
from .tasks import TASK_KINDS, EvalTask, Side


@dataclass(frozen=True)
class TaskResult:
    encoder: str
    task: str
    dataset: str
    group: str
    metrics: dict[str, float]  # {} when skipped
    n_queries: int
    n_targets: int
    status: str = "ok"  # "ok" or "skipped: <why>"
    note: str = ""
    # per query, for paired comparisons (evaluation.compare); kept out of results.json
    query_ranks: Optional[tuple[int, ...]] = field(default=None, repr=False)  # (q,) 1-based rank of the best correct target
    query_units: Optional[tuple[str, ...]] = field(default=None, repr=False)  # (q,) the concept each query belongs to


@dataclass(frozen=True)
class SimilarityPreview:
    """A small (k, k) corner of one task's similarity matrix, correct pairs on the diagonal."""

    encoder: str
    task_id: str
    rows: list[str]
    cols: list[str]
    values: list[list[float]]  # (k, k)


@dataclass
class EncoderRun:
    name: str
    info: dict[str, Any]
    timings: dict[str, float]  # load / eval seconds and the encoder's own (kept out of results.json)


@dataclass
class EvalRun:
    results: list[TaskResult] = field(default_factory=list)
    encoders: list[EncoderRun] = field(default_factory=list)
    previews: list[SimilarityPreview] = field(default_factory=list)


class Embedder:
    """An encoder plus a cache of what it has embedded, keyed by (modality, role, item)."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder
        self.cache: dict[tuple[str, str, str], np.ndarray] = {}

    def embed(self, side: Side, against: str = "text") -> np.ndarray:
        """(n, d) float32 unit rows for the side's items, in order; `against` is the modality of the other side (a
        text compared with images may be embedded differently: config.TextAgainst)."""
        role = side.role if side.modality == "text" or _image_roles_differ(self.encoder) else "document"
        borrow = side.modality == "text" and against == "image" and bool(getattr(self.encoder, "texts_borrow_pictures", False))
        role = f"{role}|against-images" if borrow else role  # the cache keeps the two text embeddings apart
        todo = list(dict.fromkeys(it for it in side.items if (side.modality, role, it) not in self.cache))
        if todo:
            if borrow:
                fresh = self.encoder.encode_text(todo, side.role, against="images")
            elif side.modality == "text":
                fresh = self.encoder.encode_text(todo, role)
            else:
                fresh = self.encoder.encode_images(todo, role)
            for item, row in zip(todo, np.asarray(fresh, dtype=np.float32)):
                self.cache[side.modality, role, item] = row
        return np.stack([self.cache[side.modality, role, it] for it in side.items])

    def appearance(self, side: Side) -> np.ndarray:
        """(n, C) the encoder's appearance rows (image tower features: mmembed/appearance.py) for an image side."""
        todo = list(dict.fromkeys(it for it in side.items if ("appearance", "-", it) not in self.cache))
        if todo:
            for item, row in zip(todo, np.asarray(self.encoder.encode_appearance(todo), dtype=np.float32)):
                self.cache["appearance", "-", item] = row
        return np.stack([self.cache["appearance", "-", it] for it in side.items])


def appearance_weight(encoder: Encoder, task: EvalTask) -> float:
    """The weight of the appearance channel in this task's scores: the encoder's own (MMEmbedEncoder's, from
    --appearance-weight) on image -> image tasks, as `Collection.search` ranks images for an image query; else 0."""
    if not (task.queries.modality == task.targets.modality == "image") or not hasattr(encoder, "encode_appearance"):
        return 0.0
    return float(getattr(encoder, "appearance_weight", 0.0))


def _image_roles_differ(encoder: Encoder) -> bool:
    """Whether the encoder embeds a query image differently from a document image (config.ImageRole); when not,
    images are embedded once and shared by every task."""
    return bool(getattr(encoder, "image_roles_differ", False))


def similarity(embedder: Embedder, task: EvalTask, glossing: Optional["QueryGlossing"] = None) -> np.ndarray:
    """(q, t) cosine similarities (encoders return unit rows); text queries glossed when `glossing` applies."""
    if glossing is not None and glossing.applies(task):
        queries = glossing(embedder, task)
    else:
        queries = embedder.embed(task.queries, against=task.targets.modality)
    return queries @ embedder.embed(task.targets, against=task.queries.modality).T


class QueryGlossing:
    """Query glossing (mmembed/glossary.py) for every encoder alike: a text query in a language with a dictionary
    and a weight is moved toward its English gloss's embedding, embedded by the same encoder. The query language
    is the task's (t2i 'sw', t2t / bitext 'sw->en')."""

    def __init__(self, weights: Optional[dict[str, float]] = None):
        self.weights = {lang: w for lang, w in (weights or {}).items() if w > 0}
        self.glosses: dict[str, list[Optional[str]]] = {}  # task id -> per query, its gloss or None

    @staticmethod
    def query_lang(task: EvalTask) -> str:
        """The task's query language as glossing codes it ('sw_KE', 'DE-at' -> 'sw', 'de'); others as they are."""
        from mmembed.glossary import Glossary, GlossaryError

        lang = task.group.split("->", 1)[0]
        try:
            return Glossary.language(lang)
        except GlossaryError:
            return lang

    def applies(self, task: EvalTask) -> bool:
        return task.queries.modality == "text" and self.query_lang(task) in self.weights

    def load(self, langs) -> None:
        """Read the dictionaries of these languages now (a missing one fails before any model loads); each is read
        once per process (glossary_for), however many QueryGlossing objects use it."""
        from mmembed.glossary import glossary_for

        for lang in sorted(set(langs) & set(self.weights)):
            glossary_for(lang)

    def __call__(self, embedder: Embedder, task: EvalTask) -> np.ndarray:
        from mmembed.glossary import fuse_gloss, glossary_for

        lang = self.query_lang(task)
        if task.id not in self.glosses:
            glossary = glossary_for(lang)
            self.glosses[task.id] = [glossary.gloss(t) for t in task.queries.items]
        glosses = self.glosses[task.id]
        has = np.array([g is not None for g in glosses])
        against = task.targets.modality
        queries = embedder.embed(task.queries, against=against)
        if not has.any():
            return queries
        gloss_side = Side("text", tuple(g or "" for g in glosses), tuple(() for _ in glosses), task.queries.role)
        return fuse_gloss(queries, embedder.embed(gloss_side, against=against), has, self.weights[lang])


class LexicalScores:
    """The lexical channel's (q, t) scores per text -> text task (mmembed/lexical.py), computed once for all
    encoders: they depend on the texts only. Weight 0 turns the channel off."""

    def __init__(self, weight: float = 0.0):
        self.weight = weight
        self.cache: dict[str, np.ndarray] = {}

    def applies(self, task: EvalTask) -> bool:
        return self.weight > 0 and task.queries.modality == task.targets.modality == "text"

    def __call__(self, task: EvalTask) -> np.ndarray:
        if task.id not in self.cache:
            from mmembed.lexical import LexicalScorer

            self.cache[task.id] = LexicalScorer(task.targets.items).scores(task.queries.items)
        return self.cache[task.id]


def score_task(embedder: Embedder, task: EvalTask, lexical: Optional[LexicalScores] = None,
               glossing: Optional[QueryGlossing] = None) -> TaskResult:
    """Rank every query's targets by cosine, or by a fused score: with the encoder's appearance weight for image ->
    image tasks, with a lexical weight for text -> text tasks."""
    base = dict(encoder=embedder.encoder.name, task=task.kind, dataset=task.dataset, group=task.group,
                n_queries=len(task.queries), n_targets=len(task.targets), note=task.note)
    missing = task.modalities - embedder.encoder.modalities
    if missing:
        return TaskResult(metrics={}, status=f"skipped: {embedder.encoder.name} does not embed {'/'.join(sorted(missing))}", **base)
    sim = similarity(embedder, task, glossing)
    if weight := appearance_weight(embedder.encoder, task):
        from mmembed.appearance import fuse_appearance

        sim = fuse_appearance(sim, embedder.appearance(task.queries) @ embedder.appearance(task.targets).T, weight)
    if lexical is not None and lexical.applies(task):
        from mmembed.lexical import fuse

        sim = fuse(sim, lexical(task), lexical.weight)
    ranks = first_relevant_rank(sim, relevance_from_keys(task.queries.keys, task.targets.keys))
    if TASK_KINDS[task.kind].metric == "accuracy":
        metrics = {"acc": recall_at_k(ranks, 1)}
    else:
        metrics = retrieval_metrics_from_ranks(ranks)
    return TaskResult(metrics={k: round(v, 6) for k, v in metrics.items()}, query_ranks=tuple(ranks.tolist()),
                      query_units=task.queries.units, **base)


def preview(embedder: Embedder, task: EvalTask, k: int = 12) -> Optional[SimilarityPreview]:
    """The first k queries against their own first correct target: a readable heatmap."""
    if task.modalities - embedder.encoder.modalities:
        return None
    relevant = relevance_from_keys(task.queries.keys, task.targets.keys)  # (q, t)
    rows = list(range(min(k, len(task.queries))))
    cols = list(dict.fromkeys(int(np.argmax(relevant[i])) for i in rows))
    sim = similarity(embedder, task)[np.ix_(rows, cols)]  # (k, k')
    return SimilarityPreview(embedder.encoder.name, task.id, [task.queries.labels[i] for i in rows],
                             [task.targets.labels[j] for j in cols], np.round(sim, 4).tolist())


def pick_preview_task(tasks: Sequence[EvalTask]) -> EvalTask:
    """The heatmap shows the same task for every encoder: text -> image in English if there is one."""
    order = {"t2i": 0, "i2t": 1, "zeroshot": 2, "i2i": 3, "bitext": 4, "t2t": 5}
    return min(tasks, key=lambda t: (order.get(t.kind, 9), t.group not in ("en", "en->en"), t.dataset, t.group))


def run_evaluation(
    names: Sequence[str],
    tasks: Sequence[EvalTask],
    opts: EncoderOptions,
    on_encoder: Optional[Callable[[EncoderRun, list[TaskResult]], None]] = None,
    lexical_weight: float = 0.0,
    glossing: Optional[QueryGlossing] = None,
) -> EvalRun:
    """Every encoder on every task. `lexical_weight` > 0 fuses the lexical channel into text -> text tasks
    (bitext, t2t) for every encoder alike; `glossing` glosses text queries in its languages, for every encoder
    alike."""
    run = EvalRun()
    lexical = LexicalScores(lexical_weight)
    heat_task = pick_preview_task(tasks)
    for name in names:
        t0 = time.perf_counter()
        encoder = resolve_encoder(name, opts)
        t1 = time.perf_counter()
        embedder = Embedder(encoder)
        results = [score_task(embedder, task, lexical, glossing) for task in tasks]
        pv = preview(embedder, heat_task)
        timings = {"load_seconds": round(t1 - t0, 2), "eval_seconds": round(time.perf_counter() - t1, 2)}
        timings.update(getattr(encoder, "timings", dict)())
        er = EncoderRun(encoder.name, encoder.describe(), timings)
        run.results.extend(results)
        run.encoders.append(er)
        if pv is not None:
            run.previews.append(pv)
        if on_encoder is not None:
            on_encoder(er, results)
        del encoder, embedder
        gc.collect()
    return run
