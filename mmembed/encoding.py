"""The encode() contract: validate, sort by length into batches, run, restore order, truncate.

Inputs are sorted by TOKEN length (not characters) so batches carry little padding; the
original order is restored before returning. Returns float32 numpy (n, dim), L2-normalized, or a
torch tensor with `as_tensor=True`. An empty list returns (0, dim).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .config import IMAGE_ROLES, TEXT_AGAINST, ImageRole, TextAgainst
from .text_frontend import SequencePlan
from .tokenizer import unicode_problem

if TYPE_CHECKING:
    from .model import MMEmbedModel

AUTO_PROGRESS_MIN_ITEMS = 256


class EncodeInputError(ValueError):
    """An input to encode_* is unusable; the message names which one and why."""


@dataclass(frozen=True)
class Item:
    plan: SequencePlan
    image: Any = None  # image input for plans with visual tokens
    image_alone: bool = False  # an image without text: the label prior and image centering (if any) apply


def _check_unicode(text: str, where: str) -> None:
    """Refuse a str the tokenizer cannot take (tokenizer.unicode_problem)."""
    if problem := unicode_problem(text):
        raise EncodeInputError(f"{where} {problem}")


def is_int(x) -> bool:
    """An int or numpy integer, not a bool."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def check_texts(texts, what: str = "text") -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)):
        raise EncodeInputError(f"expected a list of strings, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise EncodeInputError(f"{what} #{i} is {type(t).__name__} ({t!r:.60}), expected str")
        _check_unicode(t, f"{what} #{i}")
    return list(texts)


def _check_instruction(instruction: Optional[str]) -> None:
    if instruction is not None:
        if not isinstance(instruction, str):
            raise EncodeInputError(f"instruction must be a str or None, got {type(instruction).__name__}")
        _check_unicode(instruction, "instruction")


def _check_images(images) -> list:
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        images = [images]
    if not isinstance(images, (list, tuple)):
        raise EncodeInputError(f"expected a list of images, got {type(images).__name__}")
    return list(images)


def _check_role(role) -> ImageRole:
    if role not in IMAGE_ROLES:
        raise EncodeInputError(f"role must be 'document' (an image a search ranks: the default) or 'query' (an image "
                               f"whose texts are ranked: image -> text, zero-shot labels), got {role!r}")
    return role


def _require_images(model: "MMEmbedModel") -> None:
    if model.image_tower is None or not model.config.image_trained:
        raise RuntimeError(
            f"model {model.name!r} has no trained image projector, so its image embeddings would be noise. "
            "Load a trained multimodal model (see mmembed.list_models(), e.g. an adapter under adapters/) "
            "or train one with `mmembed train`."
        )


def _finish(emb: torch.Tensor, model: "MMEmbedModel", dim: Optional[int], as_tensor: bool):
    if dim is not None:
        if not is_int(dim) or not 0 < dim <= model.dim:
            raise EncodeInputError(f"dim must be an int in 1..{model.dim}, got {dim!r}")
        emb = torch.nn.functional.normalize(emb[:, :int(dim)], dim=-1)  # Matryoshka: truncate, renormalize
    return emb if as_tensor else emb.numpy()


def run_items(
    model: "MMEmbedModel",
    items: Sequence[Item],
    *,
    batch_size: int = 32,
    progress: Optional[bool] = None,
    role: ImageRole = "document",
    looks: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Embed items in token-length-sorted batches; returns (n, D) float32 in the input order. `role` is what the
    images alone among them are (config.ImageRole): image add-ons may weigh a query image differently. `looks`
    (n, C), if given, receives each image item's appearance (mmembed/appearance.py) from the same tower pass."""
    if not is_int(batch_size) or batch_size < 1:
        raise EncodeInputError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)
    n = len(items)
    out = torch.empty((n, model.dim), dtype=torch.float32)
    if n == 0:
        return out
    order = sorted(range(n), key=lambda i: -len(items[i].plan))
    batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
    show = progress if progress is not None else n >= AUTO_PROGRESS_MIN_ITEMS
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    model.set_lora_merged(True)  # undone by model.train(): training never sees merged weights
    try:
        with torch.inference_mode():
            for idx in tqdm(batches, desc=f"encode ({model.name})", unit="batch", disable=not show):
                imgs = [(i, items[i].image) for i in idx if items[i].plan.num_visual]
                visual = features = None
                if imgs:
                    pixels = model.pixels([img for _, img in imgs], indices=[i for i, _ in imgs])
                    features = model.image_features(pixels)  # (n_img, c, h, w)
                    visual = model.project_features(features)
                    if looks is not None:
                        looks[[i for i, _ in imgs]] = appearance_rows(features)
                emb = model([items[i].plan for i in idx], visual)  # (b, D)
                if features is not None and (model.label_prior is not None or model.feature_readout is not None
                                             or model.neighbour_captions is not None):
                    emb = _apply_image_addons(model, emb, idx, [i for i, _ in imgs], features, items, role)
                if features is not None and model.image_centering is not None:
                    emb = _apply_image_centering(model, emb, idx, items)
                out[idx] = emb.float().cpu()  # the model may sit on a GPU
    finally:
        model.train(was_training)
    return out


def appearance_rows(features: torch.Tensor) -> torch.Tensor:
    """(n, C, h, w) tower feature maps -> (n, C) float32 unit rows on the CPU: the appearance of each image."""
    from .feature_readout import pooled_features

    return torch.nn.functional.normalize(pooled_features(features), dim=-1).cpu()


def _apply_image_addons(model, emb, idx, img_idx, features, items, role: ImageRole) -> torch.Tensor:
    """Label prior, then feature read-out, then neighbour captions, on the rows of `emb` (batch order `idx`) that are images alone; `features`
    rows follow `img_idx`. The tower's classifier logits (the prior's labels, the read-out's gate) are computed once."""
    rows = [r for r, i in enumerate(img_idx) if items[i].image_alone]
    if not rows:
        return emb
    where = {i: b for b, i in enumerate(idx)}
    at = torch.tensor([where[img_idx[r]] for r in rows], device=emb.device)
    maps = features[rows]  # (n, c, h, w)
    readout = model.feature_readout
    needs_logits = model.label_prior is not None or (readout is not None and readout.cfg.confidence_gate)
    logits = model.image_tower.forward_head(maps) if needs_logits else None  # (n, K)
    if model.label_prior is not None:
        emb = model.label_prior.on_rows(emb, at, logits)
    if readout is not None:
        emb = readout.on_rows(emb, at, maps, logits, role)
    if model.neighbour_captions is not None:
        emb = model.neighbour_captions.on_rows(emb, at, maps, role)
    return emb


def _apply_image_centering(model, emb, idx, items) -> torch.Tensor:
    """Centering on the rows of `emb` (batch order `idx`) that are images alone (after their label prior)."""
    rows = [b for b, i in enumerate(idx) if items[i].image_alone]
    if not rows:
        return emb
    out = emb.clone()
    out[rows] = model.image_centering(emb[rows].float()).to(emb.dtype)
    return out


def encode_text(
    model: "MMEmbedModel",
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    dim: Optional[int] = None,
    instruction: Optional[str] = None,
    progress: Optional[bool] = None,
    as_tensor: bool = False,
    against: TextAgainst = "texts",
):
    texts = check_texts(texts)
    _check_instruction(instruction)
    if against not in TEXT_AGAINST:
        raise EncodeInputError(f"against must be 'texts' (the default: texts compared with texts) or 'images' (texts "
                               f"compared with pictures: text -> image queries, labels, captions), got {against!r}")
    plans = model.text.text_plans(texts, instruction)
    emb = run_items(model, [Item(p) for p in plans], batch_size=batch_size, progress=progress)
    if against == "images":
        emb = borrowed_pictures(model, emb, batch_size)
    return _finish(emb, model, dim, as_tensor)


def borrowed_pictures(model: "MMEmbedModel", plain: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """(n, D) unit text embeddings (the plain path, every dim) -> (n, D) the same texts compared with images: each
    adds the pictures its words name (mmembed/neighbour_pictures.py), or is unchanged when the model borrows none.
    A post-step on finished embeddings, so one backbone pass serves both sides (encode_text_both). In batches: a
    text's nearest caption keys are a (b, M) product."""
    memory = model.neighbour_captions
    if memory is None or not memory.reads_texts or len(plain) == 0:
        return plain
    device = memory.texts.key_mean.device
    out = torch.empty_like(plain)
    with torch.inference_mode():
        for s in range(0, len(plain), batch_size):
            rows = plain[s : s + batch_size].to(device)
            out[s : s + batch_size] = memory.on_text_rows(rows, list(range(len(rows)))).to(out.device, out.dtype)
    return out


def encode_text_both(model: "MMEmbedModel", texts: Sequence[str], *, batch_size: int = 32, dim: Optional[int] = None,
                     instruction: Optional[str] = None, progress: Optional[bool] = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """((n, dim) the texts against texts, (n, dim) the same against images) from ONE backbone pass: a text query in
    a collection of texts and pictures ranks each kind of row with its own vector (mmembed/search/query.py)."""
    plain = encode_text(model, texts, batch_size=batch_size, instruction=instruction, progress=progress,
                        as_tensor=True)  # (n, D): every dim, so the borrowing sees what encode_text's does
    facing = borrowed_pictures(model, plain, batch_size)
    return _finish(plain, model, dim, False), _finish(facing, model, dim, False)


def encode_image(
    model: "MMEmbedModel",
    images: Sequence,
    *,
    batch_size: int = 32,
    dim: Optional[int] = None,
    instruction: Optional[str] = None,
    progress: Optional[bool] = None,
    as_tensor: bool = False,
    role: ImageRole = "document",
    looks: Optional[torch.Tensor] = None,
):
    images = _check_images(images)
    _check_instruction(instruction)
    role = _check_role(role)
    if images:
        _require_images(model)
    plans = model.text.image_plans(len(images), model.num_visual_tokens, instruction) if images else []
    items = [Item(p, img, image_alone=True) for p, img in zip(plans, images)]
    emb = run_items(model, items, batch_size=batch_size, progress=progress, role=role, looks=looks)
    return _finish(emb, model, dim, as_tensor)


def encode_image_and_appearance(model: "MMEmbedModel", images: Sequence, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """((n, dim) embeddings, (n, C) appearances) of images from ONE tower pass (indexing needs both: a second pass
    would cost half again the indexing time). Keywords as encode_image, numpy out."""
    from .appearance import appearance_dim

    looks = torch.zeros((len(_check_images(images)), appearance_dim(model)), dtype=torch.float32)
    emb = model.encode_image(images, looks=looks, **kwargs)  # through the model: one place to wrap image encoding
    return emb, looks.numpy()


def _is_image(x) -> bool:
    return isinstance(x, (Path, Image.Image, np.ndarray))


def encode_mixed(
    model: "MMEmbedModel",
    items: Sequence,
    *,
    batch_size: int = 32,
    dim: Optional[int] = None,
    instruction: Optional[str] = None,
    progress: Optional[bool] = None,
    as_tensor: bool = False,
    role: ImageRole = "document",
):
    """Mixed inputs in one call. A `str` is TEXT; an image is a pathlib.Path, PIL image or array;
    an `(image, text)` tuple is a fused image+text embedding. (A file path given as a plain str is
    text: wrap it in pathlib.Path to mean the image file.) `role` is what its images alone are."""
    if isinstance(items, tuple) and len(items) == 2 and _is_image(items[0]) and isinstance(items[1], str):
        raise EncodeInputError("a bare (image, text) tuple is ambiguous: pass [(image, text)] for one fused "
                               "embedding, or [image, text] for two")
    if not isinstance(items, (list, tuple)):
        raise EncodeInputError(f"expected a list of items, got {type(items).__name__}")
    _check_instruction(instruction)
    role = _check_role(role)
    built: list[Optional[Item]] = [None] * len(items)
    text_idx, texts, fused_idx, fused_texts, fused_imgs = [], [], [], [], []
    for i, x in enumerate(items):
        if isinstance(x, str):
            _check_unicode(x, f"item #{i}")
            text_idx.append(i)
            texts.append(x)
        elif _is_image(x):
            _require_images(model)
            built[i] = Item(model.text.image_plans(1, model.num_visual_tokens, instruction)[0], x, image_alone=True)
        elif isinstance(x, tuple) and len(x) == 2 and _is_image(x[0]) and isinstance(x[1], str):
            _require_images(model)
            _check_unicode(x[1], f"item #{i}'s text")
            fused_idx.append(i)
            fused_imgs.append(x[0])
            fused_texts.append(x[1])
        else:
            raise EncodeInputError(
                f"item #{i} is {type(x).__name__} ({x!r:.60}): expected str (text), pathlib.Path / PIL.Image / "
                "numpy array (image), or an (image, text) tuple"
            )
    for i, plan in zip(text_idx, model.text.text_plans(texts, instruction)):
        built[i] = Item(plan)
    for i, plan, img in zip(fused_idx, model.text.fused_plans(fused_texts, model.num_visual_tokens, instruction), fused_imgs):
        built[i] = Item(plan, img)
    emb = run_items(model, built, batch_size=batch_size, progress=progress, role=role)  # type: ignore[arg-type]
    return _finish(emb, model, dim, as_tensor)
