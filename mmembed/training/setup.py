"""What a run trains, built from its config: the pair sources, the model (loaded from the base and
reshaped as the config asks: LoRA, visual tokens, attention, tower blocks, label prior, centering)
and which of its parameters get gradients."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Sequence

from ..config import LoraConfig
from ..model import MMEmbedModel
from ..vision import tower_trained_prefixes
from .config import TrainConfig
from .custom_pairs import load_custom_pairs
from .pairs import PairSource, group_pairs, pairs_from_manifest

logger = logging.getLogger(__name__)


def build_sources(cfg: TrainConfig) -> tuple[list[PairSource], list[str]]:
    """-> (sources, problems found in custom pairs, as 'file:line: reason' strings)."""
    sources, problems = [], []
    for spec in cfg.sources:
        if spec.custom:
            pairs, bad = load_custom_pairs(spec.path, on_error=cfg.on_error)
            problems += [str(p) for p in bad]
        else:
            pairs = pairs_from_manifest(spec.path, langs=spec.langs, kinds=spec.kinds,
                                        max_per_concept_lang=spec.max_per_concept_lang, anchor_lang=spec.anchor_lang,
                                        drop_categories=spec.drop_categories)
        n_images = sum(p.text is None for p in pairs)
        if spec.hard_negatives_top_k is not None:  # checked before the (slow) model load, on every rank
            _check_minable(spec.name, pairs, n_images)
        if spec.distill and n_images:
            raise ValueError(f"source {spec.name!r}: distill = true needs text-text pairs (the teacher embeds text), "
                             f"but {n_images} of its {len(pairs)} pairs have an image anchor (keep text pairs only "
                             f"with kinds = [...], or distill another source)")
        if cfg.loss == "siglip" and (n_neg := sum(p.negative is not None for p in pairs)):
            # checked before the model load: the sigmoid loss has no place for a pair's own negative
            raise ValueError(f"source {spec.name!r}: {n_neg} pairs carry a hard negative, which loss = 'siglip' cannot use "
                             f"(use loss = 'clip', or drop the negative column)")
        sources.append(group_pairs(spec.name, pairs, spec.weight))
    return sources, problems


def check_batch_fits(cfg: TrainConfig, sources: list[PairSource], world: int = 1, problems: Sequence[str] = ()) -> None:
    """A batch holds at most one pair per concept (an image, or a text and its translations): checked before
    the (slow) model load, not at step 1."""
    total = sum(len(s.by_concept) for s in sources)
    if cfg.batch_size <= total:
        return
    unit = world * cfg.grad_accum
    fits = total // unit * unit
    hint = f"pass --batch-size {fits} or less" if fits >= 2 else "add pairs with other images or texts"
    skipped = "" if not problems else f"; {len(problems)} bad rows were skipped:\n" + "\n".join(
        f"  {p}" for p in problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
    raise ValueError(f"batch_size {cfg.batch_size} is larger than the {total} distinct concepts in the training pairs "
                     f"(a batch holds at most one pair per image or text); {hint}{skipped}")


def _check_minable(name: str, pairs, n_images: int) -> None:
    """A source with hard_negatives_top_k must be text-text pairs with >= 2 per language (a negative is
    another pair's caption in the same language). Raised here, not in rank 0's mining, so that under
    torchrun every rank stops instead of waiting for rank 0 at a barrier."""
    if n_images:
        raise ValueError(f"source {name!r}: hard_negatives_top_k mines text-text pairs, but {n_images} of its "
                         f"pairs have an image anchor (keep text pairs only with kinds = [...])")
    per_lang: dict[str, int] = {}
    for p in pairs:
        per_lang[p.lang] = per_lang.get(p.lang, 0) + 1
    if lonely := sorted(lang for lang, n in per_lang.items() if n < 2):
        raise ValueError(f"source {name!r}: hard_negatives_top_k needs at least 2 pairs per language to mine a "
                         f"negative from; one pair only in {lonely} (leave them out with langs = [...])")


def build_model(cfg: TrainConfig) -> MMEmbedModel:
    from ..registry import load

    if cfg.freeze_lora and cfg.lora_r is not None:  # before the (slow) load: a config error fails at once
        raise ValueError("freeze_lora keeps the base's LoRA fixed; lora_r would add a new one: set one of them")
    if cfg.soup:
        from .soup import soup_model

        model, _ = soup_model([cfg.base, *cfg.soup])  # the label prior already follows the soup's text side
    else:
        model = load(cfg.base)
    if cfg.freeze_text_side and model.projector is None:
        raise ValueError(f"freeze_text_side trains only the image projector, and base {cfg.base!r} has no image tower")
    if cfg.lora_r is not None:
        if model.config.lora is None:
            targets = {"target_modules": tuple(cfg.lora_targets)} if cfg.lora_targets else {}
            model.config.lora = LoraConfig(r=cfg.lora_r, alpha=2 * cfg.lora_r, **targets)
            model.add_lora()
        elif model.config.lora.r != cfg.lora_r:
            raise ValueError(f"base {cfg.base!r} already has LoRA r={model.config.lora.r}; lora_r={cfg.lora_r} differs")
    if cfg.num_visual_tokens is not None and cfg.num_visual_tokens != model.num_visual_tokens:
        if model.projector is None:
            raise ValueError(f"num_visual_tokens is set but base {cfg.base!r} has no image tower")
        model.projector.resize_tokens(cfg.num_visual_tokens)  # the base's projector MLP is kept
        model.config.projector.num_visual_tokens = cfg.num_visual_tokens
    if cfg.storage_dtype is not None:
        model.config.storage_dtype = cfg.storage_dtype  # applied at export (serialization.round_to_storage)
    if cfg.attention is not None:
        model.config.backbone.attention = cfg.attention  # read at every forward (MMEmbedModel), saved with the model
    if cfg.unfreeze_tower_blocks:
        tower = model.config.image_tower
        if tower is None:
            raise ValueError(f"unfreeze_tower_blocks is set but base {cfg.base!r} has no image tower")
        # those blocks' weights are then saved with the trained parts (a base's own trained blocks stay saved)
        tower.trained_blocks = max(tower.trained_blocks, cfg.unfreeze_tower_blocks)
        try:
            tower_trained_prefixes(model.image_tower, tower)  # the tower has that many blocks
        except ValueError as err:
            raise ValueError(f"unfreeze_tower_blocks = {cfg.unfreeze_tower_blocks} for base {cfg.base!r}: {err}") from None
    if cfg.label_prior is not None:
        model.config.label_prior = cfg.label_prior
        model.add_label_prior()  # filled from the trained text path before dev scoring and export
    if cfg.image_centering is not None:
        model.config.image_centering = cfg.image_centering
        model.add_image_centering()  # fitted on the training images before dev scoring and export
    if cfg.feature_readout is not None:
        model.config.feature_readout = cfg.feature_readout
        model.add_feature_readout()  # fitted on the training pictures before dev scoring and export
    if cfg.neighbour_captions is not None:
        model.config.neighbour_captions = dataclasses.replace(cfg.neighbour_captions, size=0)
        model.add_neighbour_captions()  # built from the training pictures before dev scoring and export
    model.config.name = cfg.name
    # the base's description ("untrained ... the training starting point") no longer holds
    model.config.description = f"{cfg.name}: trained by `mmembed train` from {cfg.start()} ({cfg.steps} steps asked)."
    return model


_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def _lora_layers_from(model: MMEmbedModel, cfg: TrainConfig) -> int:
    """Index of the first backbone layer whose LoRA trains (0: all of them)."""
    if cfg.lora_train_layers is None:
        return 0
    total = int(model.backbone.config.num_hidden_layers)
    if cfg.lora_train_layers > total:
        raise ValueError(f"lora_train_layers = {cfg.lora_train_layers} but the backbone has {total} layers")
    if model.config.lora is None:
        raise ValueError(f"lora_train_layers is set but base {cfg.base!r} has no LoRA (set lora_r)")
    return total - cfg.lora_train_layers


def set_trainable(model: MMEmbedModel, cfg: TrainConfig) -> None:
    """What trains: LoRA (if any; of the last N layers if asked), the last N tower blocks (if asked),
    projector, pooler, head, scale."""
    first = _lora_layers_from(model, cfg)
    for name, p in model.named_parameters():
        if name.startswith("backbone."):
            layer = _LAYER_INDEX.search(name)
            in_range = layer is None or int(layer.group(1)) >= first
            p.requires_grad_("lora_" in name and not cfg.freeze_lora and in_range)
        elif name.startswith("image_tower."):
            p.requires_grad_(False)
        elif cfg.freeze_text_side and name.startswith(("pooler.", "head.")):
            p.requires_grad_(False)  # shared by both modalities: fixed, texts embed exactly as in the base
        else:
            p.requires_grad_(name != "logit_bias" or cfg.loss == "siglip")
    if cfg.unfreeze_tower_blocks and model.image_tower is not None:
        for block in list(model.image_tower.blocks)[-cfg.unfreeze_tower_blocks:]:
            block.requires_grad_(True)
    if model.config.image_trained is False and model.projector is not None:
        model.config.image_trained = True  # the projector is what this run trains
    memory = model.neighbour_captions
    if memory is None or cfg.neighbour_captions is not None or cfg.steps == 0:
        return
    if text_side_trains(model):
        logger.warning("neighbour captions: this run trains the text side and its recipe has no [neighbour_captions] "
                       "table, so the base's memory (text embeddings of the old text side) is dropped")
        model.neighbour_captions = None
        model.config.neighbour_captions = None
    elif memory.texts is not None and image_side_trains(model):
        # the pictures texts borrow are image embeddings of the old image side; the rest of the memory (tower
        # features, caption embeddings) still holds
        logger.warning("neighbour captions: this run trains the image side and its recipe has no [neighbour_captions] "
                       "table, so the pictures texts borrow (image embeddings of the old image side) are dropped")
        memory.cfg.text_weight = 0.0
        memory.cfg.text_size = 0
        memory.texts = None


def text_side_trains(model: MMEmbedModel) -> bool:
    """Whether any parameter every text embedding passes through (LoRA, pooler, head) gets gradients."""
    return any(p.requires_grad for name, p in model.named_parameters()
               if name.startswith(("backbone.", "pooler.", "head.")))


def image_side_trains(model: MMEmbedModel) -> bool:
    """Whether any parameter only images pass through (projector, tower blocks) gets gradients."""
    return any(p.requires_grad for name, p in model.named_parameters()
               if name.startswith(("projector.", "image_tower.")))
