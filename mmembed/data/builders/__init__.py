"""Dataset builders: each turns data that ships in a Debian or PyPI package into a dataset folder
(train/dev/test.jsonl pair manifests, images/, card.json).

    from mmembed.data.builders import build_dataset
    build_dataset("emoji", "/work/datasets/emoji", limit=100, langs="en,de")

Builder modules are imported only when a dataset is built or described, so importing this
package costs nothing.
"""
from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmembed.data.builders.sources import MissingSourceError

__all__ = ["DATASETS", "DatasetSpec", "MissingSourceError", "build_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    """A named builder; calling it builds the dataset (`build(out, **options)` of its module)."""

    name: str
    module: str

    def _module(self):
        return importlib.import_module(self.module)

    @property
    def description(self) -> str:
        return self._module().DESCRIPTION

    def options(self) -> list[str]:
        return [p for p in inspect.signature(self._module().build).parameters if p != "out"]

    def __call__(self, out: str | os.PathLike, **options: Any) -> Path:
        unknown = sorted(set(options) - set(self.options()))
        if unknown:
            raise ValueError(f"dataset {self.name!r} has no option {', '.join(unknown)}; "
                             f"its options are: {', '.join(self.options())}")
        return self._module().build(out, **options)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("emoji", "mmembed.data.builders.emoji"),
        DatasetSpec("clipart", "mmembed.data.builders.clipart"),
        DatasetSpec("parallel", "mmembed.data.builders.parallel"),
    )
}


def build_dataset(name: str, out: str | os.PathLike, **options: Any) -> Path:
    """Build dataset `name` into folder `out` (replaced atomically); returns `out`.

    Common options: limit (int), langs ("en,de" or a list); per dataset: emoji size/skin_tones,
    clipart max_side/max_per_category (see each module's `build`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](out, **options)
