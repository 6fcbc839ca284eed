"""Weight averaging of fine-tuned models that share a base ("model soup", Wortsman et al., 2022).

Runs started from one saved model (several seeds, or recipes that differ in data or batch size) stay in
one basin, so the uniform mean of their trained tensors (LoRA A and B, projector, head, temperature) is
itself a model, often between them and sometimes above both. Only trained parts are averaged: base
weights come from their packages, as at every load.

The label prior's table holds the model's own text embeddings of the ImageNet class names, so it
follows the text path: when the inputs' text sides differ, the soup re-embeds the class names with its
own text side, as the trainer does at export (an averaged table would belong to no model). Image
centering is a fitted mean over training images; the first input's is kept.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from ..label_prior import refresh_label_embeddings
from ..serialization import CONFIG, WEIGHTS, load_model, read_config, read_weights, save_model

if TYPE_CHECKING:
    from ..model import MMEmbedModel

LABEL_TABLE = "label_prior.label_embeddings"
MEMORY_PREFIX = "neighbour_captions."  # mmembed.neighbour_captions: a memory, not weights to average
IMAGE_ONLY_PREFIXES = ("projector.", "image_tower.", "image_centering.", "logit_")  # tensors text never passes
# what an image embedding passes through besides the text side (the label table follows the text side)
IMAGE_SIDE_PREFIXES = ("projector.", "image_tower.", "image_centering.", "feature_readout.")
CONFIG_LABELS = ("name", "description", "version")  # may differ between inputs: they change no vector


class SoupError(ValueError):
    pass


@dataclass
class SoupReport:
    out: Optional[Path]  # the folder written (average_models); None for a soup made in memory
    models: list[Path]
    tensors: int  # trained tensors in each input
    differ: list[str]  # names of the tensors that are not equal in all inputs
    label_prior_refreshed: bool


def resolve_model_folder(spec: str | Path) -> Path:
    """An adapter name (adapters/NAME) or a saved model folder -> its folder; anything else is refused."""
    from ..registry import saved_model_folder

    try:
        folder = saved_model_folder(spec)
    except ValueError as err:  # its config.json is not JSON (or not UTF-8): the reader does not say which file
        raise SoupError(f"{Path(spec) / CONFIG}: not a valid mmembed config ({err})") from None
    if folder is None:
        raise SoupError(f"{spec}: not a saved mmembed model (no {CONFIG} and {WEIGHTS}) nor an adapter name; "
                        "a soup averages trained models, so registered configs and hub ids do not qualify")
    return folder


def _config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k} ({va!r} vs {vb!r})")
    return out


def soup_model(models: Sequence[str | Path]) -> tuple["MMEmbedModel", SoupReport]:
    """The uniform mean of `models` (two or more runs of one base), loaded, and what was averaged.

    Refused, with the input named: fewer than two models, configs that differ in anything that shapes
    vectors (prompt, pooling, LoRA rank, label prior, ...) and other tensor names or shapes. The
    report's `out` is None: nothing is written (`average_models` writes a folder; a recipe's `soup`
    starts training from the model itself).
    """
    if len(models) < 2:
        raise SoupError(f"a soup needs at least two models, got {len(models)}")
    folders = [resolve_model_folder(m) for m in models]
    configs = [read_config(f).to_dict() for f in folders]
    first = {k: v for k, v in configs[0].items() if k not in CONFIG_LABELS}
    for folder, config in zip(folders[1:], configs[1:]):
        differences = _config_differences(first, {k: v for k, v in config.items() if k not in CONFIG_LABELS})
        if differences:
            raise SoupError(f"{folder} is not a run of the same model as {folders[0]}: its config differs in "
                            f"{', '.join(differences[:5])}")

    states = [read_weights(f) for f in folders]
    shapes = {k: tuple(v.shape) for k, v in states[0].items()}
    for folder, state in zip(folders[1:], states[1:]):
        if {k: tuple(v.shape) for k, v in state.items()} != shapes:
            raise SoupError(f"{folder} holds other tensors (names or shapes) than {folders[0]}: not runs of one base")

    soup, differ = {}, []
    for key, tensor in states[0].items():
        tensors = [s[key] for s in states]
        if any(not torch.equal(tensor, t) for t in tensors[1:]):
            differ.append(key)
        soup[key] = (torch.stack([t.float() for t in tensors]).mean(dim=0)).to(tensor.dtype)

    text_differs = any(k != LABEL_TABLE and not k.startswith(IMAGE_ONLY_PREFIXES + (MEMORY_PREFIX,)) for k in differ)
    memory = [k for k in soup if k.startswith(MEMORY_PREFIX)]
    # a memory with a picture table (texts borrow pictures) also holds image embeddings of one image side
    image_differs = MEMORY_PREFIX + "texts.pictures" in soup and any(k.startswith(IMAGE_SIDE_PREFIXES) for k in differ)
    if memory and (text_differs or image_differs or any(k in differ for k in memory)):
        # a mean of two memories is no memory, and one memory's values are text embeddings of one text side
        what = "their text side" if text_differs else "their image side" if image_differs else "their memories"
        raise SoupError(f"{', '.join(str(f) for f in folders)} hold neighbour captions and differ in {what}: soup "
                        f"models without one and build it on the soup (a recipe with a [neighbour_captions] table)")
    model = load_model(folders[0])
    model.load_state_dict(soup, strict=False)
    refreshed = text_differs and model.label_prior is not None
    if refreshed:
        refresh_label_embeddings(model)
    model.config.description = (f"Uniform weight average (model soup) of {len(folders)} runs of one base: "
                                f"{', '.join(f.name for f in folders)}.")
    report = SoupReport(out=None, models=folders, tensors=len(soup), differ=differ, label_prior_refreshed=refreshed)
    return model, report


def average_models(models: Sequence[str | Path], out: str | Path) -> SoupReport:
    """Write the uniform mean of `models` (two or more runs of one base; `soup_model` says what is refused)
    to the new folder `out`: refused if it already exists (nothing is overwritten); written atomically."""
    out = Path(out)
    if out.exists():
        raise SoupError(f"{out} already exists; give a new folder for the soup (nothing is overwritten)")
    model, report = soup_model(models)
    model.config.name = out.name
    save_model(model, out)
    return dataclasses.replace(report, out=out)
