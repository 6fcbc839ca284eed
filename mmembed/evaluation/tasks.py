"""Evaluation tasks built from manifests: who is the query, who are the targets, what is correct.

Each task kind turns one dataset into `EvalTask`s, one per language (or language pair):
  t2i       caption in L -> the dataset's whole image gallery              R@1/5/10, MRR
  i2t       image -> the captions in L (one per concept)                   R@1/5/10, MRR
A concept may have several images: every one is in the gallery (t2i; any of them answers the
caption) and every one is a query (i2t, zeroshot).
  zeroshot  image -> class names in L (captions of kind category/class)   accuracy
  i2i       a concept's other images -> every concept's first image       R@1/5/10, MRR
            (datasets with several images of a concept, e.g. emoji-styles: outline drawing -> colour emoji)
  bitext    sentence in L <-> its anchor sentence (both directions)        accuracy (Tatoeba style)
  t2t       caption in L -> all anchor texts (or all English captions)     R@1/5/10, MRR

One caption per (concept, language) is used as query/target: the most specific kind wins (name,
title, sentence, caption, then the rest, keywords and categories last), so a language is scored
on its names rather than on keyword lists that repeat across concepts. A target is correct when
it belongs to the query's concept or has the same text (see metrics.relevance_from_keys).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

from .data import EvalDataset, EvalRecord

Modality = Literal["text", "image"]
Role = Literal["query", "document"]  # the asymmetric-encoder role (e5 'query:' / 'passage:')

KIND_PRIORITY = ("name", "title", "sentence", "caption")
LAST_KINDS = ("keyword", "category", "class")  # used only when nothing more specific exists
LABEL_KINDS = ("category", "class")  # zero-shot class names
PIVOT_LANG = "en"  # t2t on image datasets: captions in L -> English captions
MIN_TARGETS = 2  # fewer targets make R@1 trivially 1
CONCEPT_KEY = "concept:"  # prefix of the key that ties an item to its concept


class TaskError(ValueError):
    """Unknown task names or an empty task set."""


@dataclass(frozen=True)
class Side:
    """One side of a task: texts or image paths, with the keys that decide what is correct."""

    modality: Modality
    items: tuple[str, ...]  # texts, or absolute image paths
    keys: tuple[tuple[str, ...], ...]  # per item: concept id, normalised text / label
    role: Role

    def __len__(self) -> int:
        return len(self.items)

    @property
    def units(self) -> tuple[str, ...]:
        """Per item, what a paired bootstrap resamples (evaluation.compare): its concept key, or,
        for items without one (zero-shot images), the item itself (the same image in every language)."""
        return tuple(next((k for k in keys if k.startswith(CONCEPT_KEY)), item) for item, keys in zip(self.items, self.keys))

    @property
    def labels(self) -> list[str]:
        """Short display labels (heatmap axes): the text, or the image file name."""
        return [it.rsplit("/", 1)[-1] if self.modality == "image" else it for it in self.items]


@dataclass(frozen=True)
class EvalTask:
    kind: str
    dataset: str
    group: str  # a language ('de') or a direction ('de->en')
    queries: Side
    targets: Side
    note: str = ""

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset({self.queries.modality, self.targets.modality})

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.dataset}/{self.group}"


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _text_keys(concept: str, text: str) -> tuple[str, ...]:
    return (f"{CONCEPT_KEY}{concept}", f"text:{_norm(text)}")


def _rank(kind: str) -> int:
    if kind in KIND_PRIORITY:
        return KIND_PRIORITY.index(kind)
    return len(KIND_PRIORITY) + 1 + LAST_KINDS.index(kind) if kind in LAST_KINDS else len(KIND_PRIORITY)


def best_captions(records: Sequence[EvalRecord]) -> dict[tuple[str, str], EvalRecord]:
    """(concept, lang) -> the record whose caption represents it (kind priority, then file order)."""
    best: dict[tuple[str, str], EvalRecord] = {}
    for r in records:
        key = (r.record.concept, r.record.lang)
        if key not in best or _rank(r.record.kind) < _rank(best[key].record.kind):
            best[key] = r
    return best


def _langs_of(best: dict[tuple[str, str], EvalRecord], langs: Optional[frozenset[str]]) -> list[str]:
    return sorted({lang for _, lang in best if langs is None or lang in langs})


def _images(records: Sequence[EvalRecord]) -> dict[str, list[str]]:
    """concept -> its distinct image paths in file order, for image-anchored records."""
    out: dict[str, dict[str, None]] = {}
    for r in records:
        if r.image_path is not None:
            out.setdefault(r.record.concept, {})[str(r.image_path)] = None
    return {c: list(paths) for c, paths in out.items()}


def _caption_side(recs: Sequence[EvalRecord], role: Role) -> Side:
    return Side("text", tuple(r.record.caption for r in recs),
                tuple(_text_keys(r.record.concept, r.record.caption) for r in recs), role)


def _image_side(concepts: Sequence[str], images: dict[str, list[str]], role: Role) -> Side:
    """Every image of each concept, concept by concept; each keyed by its concept."""
    pairs = [(c, path) for c in concepts for path in images[c]]
    return Side("image", tuple(p for _, p in pairs), tuple((f"{CONCEPT_KEY}{c}",) for c, _ in pairs), role)


# ---- builders: (dataset, langs) -> tasks ---------------------------------------------------

def build_t2i(ds: EvalDataset, langs: Optional[frozenset[str]]) -> list[EvalTask]:
    image_recs = [r for r in ds.records if r.image_path is not None]
    images = _images(image_recs)
    if len(images) < MIN_TARGETS:
        return []
    gallery = _image_side(sorted(images), images, "document")
    best = best_captions(image_recs)
    tasks = []
    for lang in _langs_of(best, langs):
        recs = [best[c, lang] for c in sorted(images) if (c, lang) in best]
        tasks.append(EvalTask("t2i", ds.name, lang, _caption_side(recs, "query"), gallery))
    return tasks


def build_i2t(ds: EvalDataset, langs: Optional[frozenset[str]]) -> list[EvalTask]:
    image_recs = [r for r in ds.records if r.image_path is not None]
    images = _images(image_recs)
    best = best_captions(image_recs)
    tasks = []
    for lang in _langs_of(best, langs):
        concepts = [c for c in sorted(images) if (c, lang) in best]
        if len(concepts) >= MIN_TARGETS:
            captions = _caption_side([best[c, lang] for c in concepts], "document")
            tasks.append(EvalTask("i2t", ds.name, lang, _image_side(concepts, images, "query"), captions))
    return tasks


def build_zeroshot(ds: EvalDataset, langs: Optional[frozenset[str]]) -> list[EvalTask]:
    image_recs = [r for r in ds.records if r.image_path is not None]
    images = _images(image_recs)
    # class = the concept's first category caption in L. Without categories every concept would
    # be its own class, which is i2t under another name: such datasets get no zeroshot task.
    label_of: dict[tuple[str, str], str] = {}
    for r in image_recs:
        if r.record.kind in LABEL_KINDS:
            label_of.setdefault((r.record.concept, r.record.lang), r.record.caption)
    tasks = []
    for lang in sorted({lang for _, lang in label_of if langs is None or lang in langs}):
        concepts = [c for c in sorted(images) if (c, lang) in label_of]
        classes = sorted({_norm(label_of[c, lang]): label_of[c, lang] for c in concepts}.items())
        if len(classes) < MIN_TARGETS:
            continue
        # the concept key matches no class name: it only ties a concept's images together for the bootstrap
        queries = Side("image", tuple(p for c in concepts for p in images[c]),
                       tuple((f"label:{_norm(label_of[c, lang])}", f"{CONCEPT_KEY}{c}") for c in concepts
                             for _ in images[c]), "query")
        targets = Side("text", tuple(text for _, text in classes), tuple((f"label:{k}",) for k, _ in classes), "document")
        tasks.append(EvalTask("zeroshot", ds.name, lang, queries, targets))
    return tasks


def build_i2i(ds: EvalDataset, langs: Optional[frozenset[str]]) -> list[EvalTask]:
    """Image -> image: a concept's first image (manifest order) is its reference; each of its other images queries the
    references of all concepts. Captions play no part, so there is one task per dataset (group 'all')."""
    images = _images([r for r in ds.records if r.image_path is not None])
    references = {c: paths[:1] for c, paths in images.items()}
    others = {c: paths[1:] for c, paths in images.items() if len(paths) > 1}
    if not others or len(references) < MIN_TARGETS:
        return []
    queries = _image_side(sorted(others), others, "query")
    gallery = _image_side(sorted(references), references, "document")
    return [EvalTask("i2i", ds.name, "all", queries, gallery)]


def build_bitext(ds: EvalDataset, langs: Optional[frozenset[str]]) -> list[EvalTask]:
    """Tatoeba style: the pool is exactly the aligned pairs of the language pair, both directions."""
    text_recs = [r for r in ds.records if r.record.text is not None and r.record.text_lang != r.record.lang]
    pairs: dict[tuple[str, str], list[EvalRecord]] = defaultdict(list)
    for r in best_captions(text_recs).values():
        pairs[r.record.lang, r.record.text_lang or "?"].append(r)
    tasks = []
    for (lang, pivot), recs in sorted(pairs.items()):
        if (langs is not None and lang not in langs) or len(recs) < MIN_TARGETS:
            continue
        recs.sort(key=lambda r: r.record.concept)
        xx = _caption_side(recs, "query")
        anchors = Side("text", tuple(r.record.text for r in recs),  # type: ignore[misc]
                       tuple(_text_keys(r.record.concept, r.record.text or "") for r in recs), "query")
        tasks.append(EvalTask("bitext", ds.name, f"{lang}->{pivot}", xx, anchors))
        tasks.append(EvalTask("bitext", ds.name, f"{pivot}->{lang}", anchors, xx))
    return tasks


def build_t2t(ds: EvalDataset, langs: Optional[frozenset[str]]) -> list[EvalTask]:
    """Caption in L -> the whole pool of anchor texts (text datasets) or English captions (image datasets)."""
    text_recs = [r for r in ds.records if r.record.text is not None]
    best = best_captions(text_recs or list(ds.records))
    if text_recs:
        anchor_of = {r.record.concept: r for r in text_recs}
        pool_concepts = sorted(anchor_of)
        pool = Side("text", tuple(anchor_of[c].record.text for c in pool_concepts),  # type: ignore[misc]
                    tuple(_text_keys(c, anchor_of[c].record.text or "") for c in pool_concepts), "document")
        pivot_of = {c: r.record.text_lang or "?" for c, r in anchor_of.items()}
    else:
        pool_concepts = sorted(c for c, lang in best if lang == PIVOT_LANG)
        pool = _caption_side([best[c, PIVOT_LANG] for c in pool_concepts], "document")
        pivot_of = {c: PIVOT_LANG for c in pool_concepts}
    if len(pool) < MIN_TARGETS:
        return []
    tasks = []
    for lang in _langs_of(best, langs):
        recs = [best[c, lang] for c in pool_concepts if (c, lang) in best and pivot_of[c] != lang]
        if recs:
            pivots = "/".join(sorted({pivot_of[r.record.concept] for r in recs}))
            tasks.append(EvalTask("t2t", ds.name, f"{lang}->{pivots}", _caption_side(recs, "query"), pool))
    return tasks


@dataclass(frozen=True)
class TaskKind:
    name: str
    description: str
    metric: Literal["retrieval", "accuracy"]
    build: Callable[[EvalDataset, Optional[frozenset[str]]], list[EvalTask]]


TASK_KINDS: dict[str, TaskKind] = {
    k.name: k
    for k in (
        TaskKind("t2i", "text -> image retrieval per caption language", "retrieval", build_t2i),
        TaskKind("i2t", "image -> text retrieval per caption language", "retrieval", build_i2t),
        TaskKind("zeroshot", "zero-shot image classification from class names per language", "accuracy", build_zeroshot),
        TaskKind("i2i", "image -> image: a concept's other images find its first image", "retrieval", build_i2i),
        TaskKind("bitext", "cross-lingual bitext mining, both directions per language pair", "accuracy", build_bitext),
        TaskKind("t2t", "text -> text retrieval from each language into the anchor/English pool", "retrieval", build_t2t),
    )
}


def parse_task_names(spec: str | Sequence[str]) -> list[str]:
    """'t2i,i2t' -> ['t2i', 'i2t']; an unknown name lists the known ones; empty is an error."""
    parts = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in s.split(",")]
    names = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    if not names:
        raise TaskError(f"no task given; known tasks: {', '.join(TASK_KINDS)}")
    unknown = [n for n in names if n not in TASK_KINDS]
    if unknown:
        raise TaskError(f"unknown task(s) {', '.join(map(repr, unknown))}; known tasks: {', '.join(TASK_KINDS)}")
    return names


def build_tasks(
    names: Sequence[str], datasets: Sequence[EvalDataset], langs: Optional[frozenset[str]] = None
) -> tuple[list[EvalTask], list[str]]:
    """All tasks of the requested kinds on every dataset, plus notes on kinds that found nothing.

    Raises TaskError when nothing at all can be evaluated: an empty table is never a result.
    """
    tasks, notes = [], []
    for name in names:
        for ds in datasets:
            built = TASK_KINDS[name].build(ds, langs)
            if not built:
                notes.append(f"{name}: nothing to evaluate in {ds.name} ({_why_empty(name, ds, langs)})")
            tasks.extend(built)
    if not tasks:
        raise TaskError("the task set is empty: " + "; ".join(notes))
    return tasks, notes


def _why_empty(name: str, ds: EvalDataset, langs: Optional[frozenset[str]]) -> str:
    has_images = any(r.image_path is not None for r in ds.records)
    has_texts = any(r.record.text is not None for r in ds.records)
    if name in ("t2i", "i2t", "zeroshot", "i2i") and not has_images:
        return "no image records"
    if name == "i2i":
        return "no concept has two or more images (i2i queries a concept's other images against its first)"
    if name == "bitext" and not has_texts:
        return "no text-anchored (parallel) records"
    if name == "zeroshot" and not any(r.record.kind in LABEL_KINDS for r in ds.records):
        return f"no captions of kind {' or '.join(LABEL_KINDS)} to use as class names"
    wanted = f" among --langs {','.join(sorted(langs))}" if langs else ""
    if name == "t2t" and not has_texts:
        others = [lang for lang in ds.langs if lang != PIVOT_LANG and (langs is None or lang in langs)]
        if PIVOT_LANG in ds.langs and not others:
            return (f"only the pivot language {PIVOT_LANG} is present{wanted}: t2t ranks captions in other "
                    f"languages against the {PIVOT_LANG} ones")
        if PIVOT_LANG not in ds.langs:
            return f"no {PIVOT_LANG} captions to rank against (t2t's pivot); languages present: {', '.join(ds.langs)}"
    return f"fewer than {MIN_TARGETS} targets per language{wanted}; languages present: {', '.join(ds.langs)}"
