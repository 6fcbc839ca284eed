"""A saved model is a folder: config.json + model.safetensors (trained parts only) + README.md.

The base backbone and image-tower weights are never written: they come from their packages or
the hub at load time. No pickle anywhere. Writes are atomic (temp folder + rename).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch

from .config import ModelConfig
from .paths import default_mode, temp_dir_beside
from .vision import tower_trained_prefixes

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(RuntimeError):
    pass


def trained_state_dict(model) -> dict[str, torch.Tensor]:
    """Everything that is not base weights: projector, pooler, head, logit_scale, LoRA, the tower's trained blocks."""
    tower = model.image_tower
    tower_saved = () if tower is None else tuple(
        f"image_tower.{prefix}" for prefix in tower_trained_prefixes(tower, model.config.image_tower))
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone."):
            if "lora_" not in key:
                continue
        elif key.startswith("image_tower.") and not key.startswith(tower_saved):
            continue
        state[key] = value.detach().contiguous().cpu()
    return state


def round_to_storage(model) -> tuple[dict[str, torch.Tensor], bool]:
    """The trained tensors as a save stores them (`model.config.storage_dtype`), and whether the live model changed.
    At "float16" every float32 tensor within float16's range is stored as float16 and the live model's own tensor is
    rounded to that value in place, so the model keeps giving the vectors the saved folder gives; one beyond that
    range stays float32 (exact)."""
    state, changed = trained_state_dict(model), False
    if model.config.storage_dtype == "float32":
        return state, changed
    model.set_lora_merged(False)  # a merged LoRA lives in the base weights too; the next encode merges the rounded one
    live, limit = model.state_dict(), torch.finfo(torch.float16).max
    with torch.no_grad():
        for key, value in state.items():
            if value.dtype == torch.float32 and value.numel() and bool(value.abs().max() <= limit):
                state[key] = value.to(torch.float16)
                rounded = state[key].to(device=live[key].device, dtype=live[key].dtype)  # the live one may be on a GPU
                if not torch.equal(live[key], rounded):
                    live[key].copy_(rounded)
                    changed = True
    return state, changed


def saved_config(model) -> dict:
    """The model's config as a saved folder records it (what the live model does, not what it was loaded with)."""
    config = model.config.to_dict()
    if getattr(model, "label_prior", None) is None:
        config["label_prior"] = None  # switched off with `model.label_prior = None`: saved as off
    if getattr(model, "image_centering", None) is None:
        config["image_centering"] = None
    if getattr(model, "feature_readout", None) is None:
        config["feature_readout"] = None
    else:  # the live settings (a weight changed on the module), so the fingerprint follows them
        config["feature_readout"] = dataclasses.asdict(model.feature_readout.cfg)
    nc = getattr(model, "neighbour_captions", None)
    config["neighbour_captions"] = None if nc is None else dataclasses.asdict(nc.cfg)
    return config


# fields that do not change a stored vector: labels, and a query image's read-out weight (an index holds documents);
# "section.field" for a field of a config section
# and how the trained tensors were stored or drawn (the tensors themselves are hashed)
FINGERPRINT_IGNORES = ("name", "description", "version", "storage_dtype", "feature_readout.query_weight",
                       "neighbour_captions.query_weight", "neighbour_captions.text_key_draw")
# config fields added after models that have them were saved: ("section.field", the value the older saves implied).
# A model whose field holds that value also matches the fingerprint computed before the field existed, which
# collections indexed then recorded (legacy_fingerprints).
FINGERPRINT_LATER_FIELDS = (("feature_readout.fit_target", "readout"),)  # session 36
# fields that change stored vectors, added later, hashed only away from their default: a model at the default keeps the
# fingerprint it had before the field existed (memory_bits: session 47; text_tied_keys: session 49)
FINGERPRINT_DROPPED_AT_DEFAULT = (("neighbour_captions.memory_bits", 16), ("neighbour_captions.text_tied_keys", "any"))


def _without(config: dict, path: str) -> dict:
    """`config` without the field at `path` ("field" or "section.field"; a section that is None has none)."""
    section, _, name = path.rpartition(".")
    if not section:
        return {k: v for k, v in config.items() if k != path}
    part = config.get(section)
    return {**config, section: {k: v for k, v in part.items() if k != name}} if isinstance(part, dict) else config


def _fingerprint_config(model) -> dict:
    config = saved_config(model)
    if config.get("neighbour_captions") is None:  # session 44's section: a model without it keeps its fingerprint
        config.pop("neighbour_captions", None)
    elif not config["neighbour_captions"].get("text_weight"):  # session 45's text side, off: the fingerprint of before
        config["neighbour_captions"] = {k: v for k, v in config["neighbour_captions"].items() if not k.startswith("text_")}
    for path, default in FINGERPRINT_DROPPED_AT_DEFAULT:
        section, _, name = path.rpartition(".")
        if (config.get(section) or {}).get(name) == default:
            config = _without(config, path)
    for path in FINGERPRINT_IGNORES:
        config = _without(config, path)
    return config


def _hash(config: dict, model) -> str:
    import hashlib

    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8"))
    for key, value in sorted(trained_state_dict(model).items()):
        if not model.config.image_trained and key.startswith(("projector.", "image_tower.")):
            continue  # an untrained projector embeds no vector (images are refused); its random init must not count
        if value.is_floating_point():
            # hashed at bf16 precision: the same adapter loaded in bf16 (a GPU) or fp32 (this CPU) is one space,
            # while any retraining moves weights by far more than bf16's 0.4% steps
            value = value.to(torch.bfloat16)
        h.update(f"{key}|{tuple(value.shape)}|".encode("utf-8"))
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(model) -> str:
    """16 hex digits that change whenever the model's embeddings could: any trained tensor or any config
    field that shapes vectors (prompt, pooling, LoRA, label prior...). The same weights loaded by name or by
    path, or saved under another name, share it. Collections record it, so vectors of a retrained or
    changed model are never mixed with the old ones (same name and version or not)."""
    return _hash(_fingerprint_config(model), model)


def legacy_fingerprints(model) -> list[str]:
    """The fingerprints older versions of mmembed computed for this same model, before fields it has at their implied
    value were added (FINGERPRINT_LATER_FIELDS); a collection that recorded one of them holds this model's vectors."""
    config, older = _fingerprint_config(model), []
    for path, implied in FINGERPRINT_LATER_FIELDS:
        section, _, name = path.rpartition(".")
        if (config.get(section) or {}).get(name) == implied:
            config = _without(config, path)
            older.append(_hash(config, model))
    return older


def model_card(model, extra: str = "") -> str:
    c: ModelConfig = model.config
    return (
        f"# {c.name}\n\n{c.description}\n\n"
        f"- backbone: {c.backbone.source}:{c.backbone.name_or_path} ({c.backbone.dtype}, {c.backbone.attention} attention)\n"
        f"- image tower: {c.image_tower.timm_name if c.image_tower else 'none'}; "
        f"{c.projector.num_visual_tokens} visual tokens; image projector trained: {c.image_trained}\n"
        f"- pooling: {c.pooling.kind} over the output of "
        f"{'all layers' if c.backbone.num_layers is None else f'the first {c.backbone.num_layers} layers'}"
        f"{'' if c.backbone.final_norm else ' (no final norm)'}; embedding dim: {model.dim}; Matryoshka dims: {list(c.matryoshka_dims) or 'none'}\n"
        f"- LoRA: {c.lora if c.lora else 'none'}\n"
        f"- trained float32 tensors stored as: {c.storage_dtype}\n"
        f"- label prior (mmembed/label_prior.py): {c.label_prior if getattr(model, 'label_prior', None) is not None else 'none'}\n"
        f"- image centering (mmembed/image_centering.py): {c.image_centering if getattr(model, 'image_centering', None) is not None else 'none'}\n"
        f"- feature read-out (mmembed/feature_readout.py): {c.feature_readout if getattr(model, 'feature_readout', None) is not None else 'none'}\n"
        f"- neighbour captions (mmembed/neighbour_captions.py): {c.neighbour_captions if getattr(model, 'neighbour_captions', None) is not None else 'none'}\n\n"
        "This folder holds only the trained parts (safetensors); base weights load from their packages.\n"
        f"{extra}"
    )


def _check_replaceable(folder: Path) -> None:
    """Saving replaces the folder: only a new, empty or earlier-saved model folder may be replaced."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise CheckpointError(f"cannot save a model to {folder}: it is a file, not a folder")
    if any(folder.iterdir()) and not (folder / CONFIG).is_file():
        raise CheckpointError(
            f"cannot save a model to {folder}: it is a non-empty folder that is not a saved mmembed model "
            f"(no {CONFIG}), and saving replaces the whole folder; pass a new or empty folder"
        )


def save_model(model, folder, card_extra: str = "", lossless: bool = False) -> Path:
    """Write the model to `folder` atomically. Replacing an earlier-saved model keeps that folder's
    other files (a train_log.jsonl, notes); any other non-empty folder is refused, never emptied.
    The trained tensors are stored as the config's storage_dtype says (`round_to_storage`), or exactly as they are
    with `lossless` (a training checkpoint: rounding there would change the run it resumes)."""
    folder = Path(folder)
    _check_replaceable(folder)
    from safetensors.torch import save_file

    tmp = temp_dir_beside(folder)
    try:
        if folder.is_dir():
            for extra in folder.iterdir():
                if extra.name in (WEIGHTS, CONFIG, "README.md"):
                    continue
                if extra.is_dir() and not extra.is_symlink():
                    shutil.copytree(extra, tmp / extra.name, symlinks=True)
                else:
                    shutil.copy2(extra, tmp / extra.name, follow_symlinks=False)
        state = trained_state_dict(model) if lossless else round_to_storage(model)[0]
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "mmembed": "1"})
        config = saved_config(model)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False))
        for name in (WEIGHTS, CONFIG):  # files kept from an earlier save keep their own modes
            (tmp / name).chmod(default_mode())  # safetensors gives 0600: a shipped model must be readable by all
        readme = folder / "README.md"
        # keep a hand-written model card if there is one; otherwise write the generated one
        (tmp / "README.md").write_text(readme.read_text() if readme.is_file() and not card_extra else model_card(model, card_extra))
        (tmp / "README.md").chmod(default_mode())
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_config(folder) -> ModelConfig:
    path = Path(folder) / CONFIG
    try:
        return ModelConfig.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"{folder} is not a saved mmembed model: {CONFIG} is missing") from None
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path} is not a valid mmembed config: {err}") from None


def read_weights(folder) -> dict[str, torch.Tensor]:
    """The trained tensors a saved folder holds; a missing or damaged file is a CheckpointError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is unreadable or corrupted: {err}") from None


def load_model(folder):
    from .model import MMEmbedModel

    folder = Path(folder)
    config = read_config(folder)
    model = MMEmbedModel(config)
    state = read_weights(folder)
    expected = set(trained_state_dict(model))
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise CheckpointError(
            f"{folder / WEIGHTS} does not fit its config: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    model.load_state_dict(state, strict=False)
    return model.eval()
