"""Evaluation data: find the manifests a user points at, check them, and subsample them.

`--data` may be
  - a dataset folder holding `{split}.jsonl` (+ images): one dataset named after the folder;
  - a folder of dataset folders (e.g. /work/datasets): one dataset per subfolder with `{split}.jsonl`;
  - a single JSONL file: one dataset named after the file, every record used whatever its split.
Every problem names the file and line: malformed lines (from `iter_manifest_lines`) and image files
that are missing, folders, or not readable images (checked here, before any model loads).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mmembed.data.manifest import SPLITS, ManifestError, PairRecord, iter_manifest_lines, resolve_image


class EvalDataError(ValueError):
    """The evaluation data cannot be used; the message says which file (and line) and why."""


@dataclass(frozen=True)
class EvalRecord:
    record: PairRecord
    image_path: Optional[Path]  # absolute image path, None for text-anchored records
    where: str  # "file:line", for messages


@dataclass(frozen=True)
class EvalDataset:
    name: str
    manifest: Path
    records: tuple[EvalRecord, ...]

    @property
    def concepts(self) -> list[str]:
        return sorted({r.record.concept for r in self.records})

    @property
    def langs(self) -> list[str]:
        return sorted({r.record.lang for r in self.records})


def image_problem(path: Path) -> Optional[str]:
    """Why `path` cannot be read as an image, or None. Cheap: headers and chunk checksums (PIL's
    verify); JPEGs are decoded at 1/8 scale, which still reads every byte (a cut-off file fails)."""
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        return "does not exist"
    if path.is_dir():
        return "is a folder, not an image file"
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (64, 64))
                img.load()
            else:
                img.verify()
    except UnidentifiedImageError:
        return "is not a readable image file (empty, damaged, or not an image)"
    except Image.DecompressionBombError:
        return None  # a huge image is the encoder's to refuse, with its own message
    except (OSError, SyntaxError, ValueError) as err:
        return f"is a damaged or truncated image ({err})"
    return None


def load_manifest(path: Path, name: str) -> EvalDataset:
    out = []
    checked: dict[Path, Optional[str]] = {}  # each image file is opened once, however many captions share it
    try:
        for lineno, rec in iter_manifest_lines(path):
            where = f"{path}:{lineno}"
            image = None
            if rec.image is not None:
                image = resolve_image(path, rec).absolute()
                if image not in checked:
                    checked[image] = image_problem(image)
                if checked[image] is not None:
                    raise EvalDataError(f"{where}: image {rec.image!r} {checked[image]} (looked for {image})")
            out.append(EvalRecord(rec, image, where))
    except ManifestError as err:
        raise EvalDataError(str(err)) from None
    if not out:
        raise EvalDataError(f"{path}: manifest has no records")
    return EvalDataset(name, path, tuple(out))


def find_datasets(data: str | os.PathLike, split: str = "test") -> list[EvalDataset]:
    """Datasets under `data` (see the module docstring), each read and checked."""
    if split not in SPLITS:
        raise EvalDataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    root = Path(data).expanduser()
    if root.is_file():
        return [load_manifest(root, root.stem)]
    if not root.is_dir():
        raise EvalDataError(f"--data {root} does not exist (give a dataset folder, a folder of datasets, or a .jsonl file)")
    if (root / f"{split}.jsonl").is_file():
        return [load_manifest(root / f"{split}.jsonl", root.name)]
    subs = sorted(p for p in root.iterdir() if (p / f"{split}.jsonl").is_file())
    if not subs:
        present = sorted(p.name for p in root.glob("*.jsonl"))
        hint = f"; it has {', '.join(present)} (pick one with --split or pass the file)" if present else ""
        raise EvalDataError(f"--data {root}: no {split}.jsonl in it or in its subfolders{hint}")
    return [load_manifest(p / f"{split}.jsonl", p.name) for p in subs]


def subsample(ds: EvalDataset, limit: Optional[int], seed: int) -> EvalDataset:
    """Keep `limit` concepts (all their records), drawn with `seed`: the same set on every run."""
    if limit is None:
        return ds
    if limit < 1:
        raise EvalDataError(f"--limit must be >= 1, got {limit}")
    concepts = ds.concepts
    if len(concepts) <= limit:
        return ds
    rng = np.random.default_rng(seed)
    keep = {concepts[i] for i in rng.choice(len(concepts), size=limit, replace=False)}
    return EvalDataset(ds.name, ds.manifest, tuple(r for r in ds.records if r.record.concept in keep))


def load_eval_data(data: Sequence[str | os.PathLike], split: str, limit: Optional[int], seed: int) -> list[EvalDataset]:
    datasets = [subsample(ds, limit, seed) for d in data for ds in find_datasets(d, split)]
    names = [ds.name for ds in datasets]
    for dup in dict.fromkeys(n for n in names if names.count(n) > 1):
        where = ", ".join(str(ds.manifest) for ds in datasets if ds.name == dup)
        raise EvalDataError(f"two datasets are named {dup!r} ({where}): a dataset folder is named after the folder, "
                            "a .jsonl file given directly after its file name; names must differ (pass the "
                            "folders, or rename or copy one file)")
    return datasets
