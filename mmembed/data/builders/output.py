"""Writing a built dataset: atomic folder swap, sorted manifests, and the machine-readable card.

Output is a pure function of the sources and the options: records are sorted, card.json carries
no timestamps, and PNGs are written by Pillow without time chunks, so a rebuild is byte-identical.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from mmembed.data.builders.concepts import langs_select_none
from mmembed.data.builders.sources import SourceInfo
from mmembed.data.manifest import SPLITS, PairRecord, write_manifest
from mmembed.paths import temp_dir_beside

CARD_NAME = "card.json"


# What a build writes at the top of its folder. A folder that holds the card and the three manifests
# and nothing but these is a previous build, which a new build may replace; anything else is kept.
BUILD_ENTRIES = frozenset({CARD_NAME, *(f"{s}.jsonl" for s in SPLITS), "images", "features.safetensors"})


def is_build(folder: str | os.PathLike) -> bool:
    """True for a previous build of a dataset: a folder holding card.json (a JSON object that names its
    dataset) and train/dev/test.jsonl, and no entry a build does not write. The one test of what a build
    may replace."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return False
    if not all((folder / f"{s}.jsonl").is_file() for s in SPLITS):
        return False
    if any(entry.name not in BUILD_ENTRIES for entry in folder.iterdir()):
        return False
    try:
        card = json.loads((folder / CARD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and isinstance(card.get("dataset"), str)


def check_out(out: str | os.PathLike, dataset: Optional[str] = None) -> Path:
    """The absolute, symlink-resolved folder a build into `out` replaces; ValueError, naming `out`, when that
    would delete something that is not a previous build (of `dataset`, when given): a file, a folder holding
    anything else, or another dataset's build."""
    path = Path(out).expanduser().resolve()
    if not path.exists():
        return path
    if not path.is_dir():
        raise ValueError(f"--out {out} is a file, not a dataset folder; a build writes a folder there. "
                         "Give a new folder (nothing was written)")
    if is_build(path):
        built = json.loads((path / CARD_NAME).read_text(encoding="utf-8"))["dataset"]
        if dataset is not None and built != dataset:
            raise ValueError(f"--out {out} holds a build of {built!r}, not of {dataset!r}; give another folder "
                             "(nothing was written)")
        return path
    entries = sorted(e.name for e in path.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise ValueError(f"--out {out} is a folder that holds other things ({shown}), not a previous build "
                         f"(a build holds only {CARD_NAME}, train/dev/test.jsonl and images/ or "
                         "features.safetensors); a build replaces its folder whole, so give a new or empty "
                         "folder (nothing was written)")
    return path


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `out`; on success it replaces `out` whole.

    `out` must be new, empty or a previous build (`check_out`: checked before and again just before the
    swap). On any exception the temp folder is removed and an existing `out` is left untouched, so an
    interrupted build never leaves a half dataset behind.
    """
    out = check_out(out)
    tmp = temp_dir_beside(out, "building")  # not mkdtemp's private mode: the dataset is for every user of the machine
    try:
        yield tmp
        check_out(out)  # the build took a while: what is there now must still be ours to replace
        old = None
        if out.exists():
            # move the previous build aside first: two renames keep `out` always complete
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "previous")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass
class DatasetCard:
    """What card.json says besides the counts (those are computed from the records)."""

    dataset: str
    description: str
    license: str
    sources: list[SourceInfo]
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # known noise and filtering rules
    stats: dict[str, Any] = field(default_factory=dict)  # builder-specific tallies (skips, matches)


def _dedup_sorted(records: Iterable[PairRecord]) -> list[PairRecord]:
    """Sort for determinism and drop pairs that two sources (e.g. CLDR and pycountry) both gave:
    the same anchor, language and caption count once, whatever the source."""
    def key(r: PairRecord):
        return (r.concept, r.image or "", r.text or "", r.lang, r.caption, r.kind, r.source)

    out: list[PairRecord] = []
    seen: set[tuple] = set()
    for r in sorted(records, key=key):
        ident = (r.concept, r.image, r.text, r.lang, r.caption)
        if ident not in seen:
            seen.add(ident)
            out.append(r)
    return out


def _counts(records: list[PairRecord]) -> dict[str, Any]:
    by_split = Counter(r.split for r in records)
    concepts = {s: len({r.concept for r in records if r.split == s}) for s in SPLITS}
    per_lang: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        per_lang[r.lang][r.split] += 1
    return {
        "records": {s: by_split.get(s, 0) for s in SPLITS} | {"total": len(records)},
        "concepts": concepts | {"total": sum(concepts.values())},
        "languages": len(per_lang),
        "per_language": {
            lang: {s: c.get(s, 0) for s in SPLITS} | {"total": sum(c.values())}
            for lang, c in sorted(per_lang.items())
        },
        "per_kind": dict(sorted(Counter(r.kind for r in records).items())),
    }


def write_dataset(folder: Path, records: Iterable[PairRecord], card: DatasetCard,
                  langs: frozenset[str] | None = None) -> dict[str, Any]:
    """Write train/dev/test.jsonl (all three, even if empty) and card.json; return the card dict.

    No record at all is a ValueError naming the options (raised inside `staging_dir`, so a previous
    build stays); `langs`, the builder's `parse_langs` result, lets it list the languages there are."""
    records = _dedup_sorted(records)
    if not records:
        requested = langs if langs is not None else card.options.get("langs")
        if requested:
            raise langs_select_none(card.dataset, requested, getattr(langs, "seen", ()))
        raise ValueError(f"{card.dataset}: no records with options {card.options}; nothing was written")
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        write_manifest(path, (r for r in records if r.split == split))
        path.chmod(0o644)  # write_manifest's temp file is private (0600)
    data = dataclasses.asdict(card) | {"counts": _counts(records)}
    (folder / CARD_NAME).write_text(
        json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return data


def write_text_dataset(out: str | os.PathLike, records: Iterable[PairRecord], *, name: str, description: str,
                       license: str, sources: list[SourceInfo], limit: int | None, langs: frozenset[str] | None,
                       notes: list[str], stats: dict[str, Any]) -> Path:
    """Write a text-only dataset (the options every text builder takes: limit, langs) into `out`,
    atomically: the folder is replaced only when everything is written."""
    with staging_dir(out) as tmp:
        card = DatasetCard(dataset=name, description=description, license=license, sources=sources,
                           options={"limit": limit, "langs": sorted(langs) if langs else None},
                           notes=notes, stats=stats)
        write_dataset(tmp, records, card, langs)
    return Path(out)
