"""Training pairs from dataset manifests, grouped by concept, and the batch sampler.

A user's own JSONL / CSV / image folder is read by `custom_pairs.load_custom_pairs` (bad rows are
reported with file and line, then skipped or rejected).

Sampling is deterministic per step (a generator seeded with (seed, step)), so a resumed run draws
exactly the batches an uninterrupted run would, with no sampler state to save. A batch holds at
most one pair per concept: two captions of one emoji in a batch would be false negatives.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, TypeVar

import torch

from ..data.feature_table import FeatureTableError, load_feature_table
from ..data.manifest import FeatureRef, read_manifest, resolve_features, resolve_image

T = TypeVar("T")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class PairsError(ValueError):
    pass


@dataclass(frozen=True)
class TrainPair:
    positive: str  # the caption / positive text
    image: Optional[str] = None  # anchor image path (absolute)
    features: Optional[FeatureRef] = None  # anchor given as a pooled-feature row (file absolute)
    text: Optional[str] = None  # anchor text
    negative: Optional[str] = None  # hard-negative text
    concept: str = ""
    lang: str = ""


@dataclass(frozen=True)
class RowProblem:
    where: str  # "file:line"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class PairSource:
    """Pairs of one source, grouped by concept then language, with a sampling weight."""

    name: str
    weight: float
    by_concept: dict[str, dict[str, list[TrainPair]]] = field(default_factory=dict)

    @property
    def concepts(self) -> list[str]:
        return sorted(self.by_concept)

    def __len__(self) -> int:
        return sum(len(v) for langs in self.by_concept.values() for v in langs.values())


def group_pairs(name: str, pairs: Sequence[TrainPair], weight: float = 1.0) -> PairSource:
    grouped: dict[str, dict[str, list[TrainPair]]] = defaultdict(lambda: defaultdict(list))
    for i, p in enumerate(pairs):
        grouped[p.concept or f"{name}:{i}"][p.lang].append(p)
    if not grouped:
        raise PairsError(f"source {name!r} has no usable pairs")
    return PairSource(name, weight, {c: dict(v) for c, v in grouped.items()})


def pairs_from_manifest(
    path: str | Path,
    *,
    langs: Optional[Sequence[str]] = None,
    kinds: Optional[Sequence[str]] = None,
    max_per_concept_lang: Optional[int] = None,
    anchor_lang: Optional[str] = None,
    drop_categories: Optional[Sequence[str]] = None,
) -> list[TrainPair]:
    """Pairs of one manifest split (e.g. data/emoji/train.jsonl), filtered by language and kind.

    anchor_lang (e.g. "en"): each caption's anchor is its concept's FIRST caption of the same kind in
    that language (file order), not its image: names pair one-to-one across languages, which keywords
    do not, so use it with kinds = ["name"] or another one-per-language kind.
    drop_categories: concepts with a kind="category" caption among these (any language, any case) are left out."""
    keep_lang = set(langs) if langs else None
    keep_kind = set(kinds) if kinds else None
    records = read_manifest(path)
    if drop_categories:
        drop = {c.casefold() for c in drop_categories}
        categories = [(r.concept, r.caption.casefold()) for r in records if r.kind == "category"]
        found = {name for _, name in categories}
        dropped = {concept for concept, name in categories if name in drop}
        if missing := sorted(drop - found):  # a typo ("flag") would silently keep every concept
            raise PairsError(f"{path}: drop_categories {missing} name no category of this manifest; its categories "
                             f"are {sorted(found)[:20] or 'none (no kind=category records)'}")
        records = [r for r in records if r.concept not in dropped]
    anchors: dict[tuple[str, str], str] = {}
    if anchor_lang is not None:
        for r in records:
            if r.lang == anchor_lang:
                anchors.setdefault((r.concept, r.kind), r.caption)
        if not anchors:
            raise PairsError(f"{path}: anchor_lang = {anchor_lang!r}, but no caption is in that language")
    counts: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for r in records:
        if keep_lang and r.lang not in keep_lang:
            continue
        if keep_kind and r.kind not in keep_kind:
            continue
        if anchor_lang is not None:
            anchor = anchors.get((r.concept, r.kind))
            if r.lang == anchor_lang or anchor is None or anchor.casefold() == r.caption.casefold():
                continue  # its own language, no anchor to pair with, or nothing to translate
        key = (r.concept, r.lang)
        if max_per_concept_lang and counts[key] >= max_per_concept_lang:
            continue
        counts[key] += 1
        if anchor_lang is not None:
            out.append(TrainPair(r.caption, text=anchor, concept=r.concept, lang=r.lang))
            continue
        image = str(resolve_image(path, r)) if r.image else None
        features = resolve_features(path, r) if r.features else None
        out.append(TrainPair(r.caption, image=image, text=r.text, features=features, negative=r.negative,
                             concept=r.concept, lang=r.lang))
    check_feature_rows([p.features for p in out if p.features is not None], where=str(path))
    return out


def check_feature_rows(refs: Sequence[FeatureRef], where: str) -> None:
    """Fail before training, not at the step that first samples a bad row: every referenced feature
    table must load and hold the referenced rows."""
    rows: dict[tuple[str, str], int] = {}
    for ref in refs:
        key = (ref.file, ref.tensor)
        rows[key] = max(rows.get(key, -1), ref.row)
    for (file, tensor), top in sorted(rows.items()):
        try:
            n = len(load_feature_table(file, tensor))
        except FeatureTableError as err:
            raise PairsError(f"{where}: {err}") from None
        if top >= n:
            raise PairsError(f"{where}: row {top} of feature table {file} tensor {tensor!r} is out of range ({n} rows)")


# ---- sampling ----------------------------------------------------------------------------

def partners_from_negatives(pairs: Sequence[TrainPair]) -> tuple[list[TrainPair], dict[tuple[str, str], list[str]]]:
    """Mined pairs -> (the pairs without their negative, {(concept, lang): concepts whose caption in
    lang was mined as a negative of that pair}), for `MixtureSampler(partners=...)`."""
    concept_of = {(p.lang, p.positive): p.concept for p in pairs}
    partners: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in pairs:
        other = concept_of.get((p.lang, p.negative)) if p.negative is not None else None
        if other is not None and other != p.concept and other not in partners[(p.concept, p.lang)]:
            partners[(p.concept, p.lang)].append(other)
    return [dataclasses.replace(p, negative=None) for p in pairs], dict(partners)


class MixtureSampler:
    """Draws a batch: source by weight, then a concept (once per batch), a language, a caption.

    A source in `one_lang` draws its language first, once per step, then only concepts that have it.
    Those sources share the step's language (drawn from the union of their languages), so their
    pairs are negatives of one another; a source without that language draws its own.

    `partners[source][(concept, lang)]` lists concepts confusable with that pair (mined hard negatives):
    a drawn pair brings one of them, in the same language, into the batch while there is room.
    """

    def __init__(self, sources: Sequence[PairSource], seed: int, one_lang: Sequence[str] = (),
                 partners: Optional[dict[str, dict[tuple[str, str], list[str]]]] = None):
        if not sources:
            raise PairsError("no training sources")
        self.sources = list(sources)
        self.seed = seed
        self._concepts = [s.concepts for s in self.sources]
        if unknown := (set(one_lang) | set(partners or {})) - {s.name for s in self.sources}:
            raise PairsError(f"one_lang / partners name unknown sources {sorted(unknown)}")
        self._partners = [(partners or {}).get(s.name, {}) for s in self.sources]
        # per one-language source: {lang: its concepts}, with the languages in sorted order
        self._by_lang: dict[int, dict[str, list[str]]] = {}
        self._langs: dict[int, list[str]] = {}  # the keys of _by_lang[i], listed once, not per step
        for i, src in enumerate(self.sources):
            if src.name in one_lang:
                by_lang: dict[str, list[str]] = defaultdict(list)
                for c in src.concepts:
                    for lang in src.by_concept[c]:
                        by_lang[lang].append(c)
                self._by_lang[i] = dict(sorted(by_lang.items()))
                self._langs[i] = list(self._by_lang[i])
        self._shared_langs = sorted({lang for langs in self._langs.values() for lang in langs})
        w = torch.tensor([s.weight for s in self.sources], dtype=torch.float64)
        self._weights = w / w.sum()

    def batch(self, step: int, batch_size: int) -> list[TrainPair]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        total = sum(len(c) for c in self._concepts)
        if batch_size > total:
            raise PairsError(f"batch_size {batch_size} is larger than the {total} concepts available")
        per_source = torch.multinomial(self._weights, batch_size, replacement=True, generator=g).bincount(
            minlength=len(self.sources)
        )
        out: list[TrainPair] = []
        step_lang = None  # the one-language sources' language this step, drawn when first needed
        for i, (src, concepts, n) in enumerate(zip(self.sources, self._concepts, per_source.tolist())):
            lang = None
            if i in self._by_lang and n:
                if step_lang is None:
                    step_lang = self._draw(self._shared_langs, g)
                lang = step_lang if step_lang in self._by_lang[i] else self._draw(self._langs[i], g)
                concepts = self._by_lang[i][lang]
            n = min(n, len(concepts))
            partners = self._partners[i]
            # without partners exactly the first n of the permutation (the draws of earlier versions)
            order = torch.randperm(len(concepts), generator=g).tolist()
            taken: set[str] = set()
            for ci in order if partners else order[:n]:
                if len(taken) >= n:
                    break
                concept = concepts[ci]
                if concept in taken:
                    continue
                langs = src.by_concept[concept]
                pair_lang = lang if lang is not None else self._draw(sorted(langs), g)
                out.append(self._draw(langs[pair_lang], g))
                taken.add(concept)
                near = [c for c in partners.get((concept, pair_lang), ())
                        if c not in taken and pair_lang in src.by_concept.get(c, {})]
                if near and len(taken) < n:
                    partner = self._draw(near, g)
                    out.append(self._draw(src.by_concept[partner][pair_lang], g))
                    taken.add(partner)
        return out

    @staticmethod
    def _draw(options: Sequence[T], g: torch.Generator) -> T:
        return options[int(torch.randint(len(options), (1,), generator=g))]
