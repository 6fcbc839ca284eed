"""One small protocol for everything that sits in the results table: mmembed models and baselines.

An `Encoder` maps texts (with a query/document role) and image files to L2-normalised float32
rows (n, d). `resolve_encoder(name)` accepts an mmembed model name (anything `mmembed.load`
takes) or a baseline name; encoders are built one at a time by the runner, so only one model is
in memory at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from mmembed.appearance import DEFAULT_APPEARANCE_WEIGHT

from .tasks import Role


@runtime_checkable
class Encoder(Protocol):
    name: str
    modalities: frozenset[str]  # subset of {"text", "image"}

    def encode_text(self, texts: Sequence[str], role: Role) -> np.ndarray:  # (n, d) float32, unit rows
        ...

    # (n, d) float32, unit rows; `role` is the images' side of the task (t2i: documents; i2t, zero-shot: queries),
    # given only by an encoder with `image_roles_differ` true (else "document": the images are embedded once)
    def encode_images(self, paths: Sequence[str], role: Role = "document") -> np.ndarray:
        ...

    def describe(self) -> dict[str, Any]:  # JSON-able facts for the results file
        ...


@dataclass
class MMEmbedEncoder:
    """An mmembed model. Roles map to `instruction=`; prompt-only models use none by default."""

    model: Any  # MMEmbedModel
    batch_size: int = 32
    # image -> image tasks rank by (1 - w) * cosine + w * the tower features' cosine, as Collection.search does for an
    # image query (mmembed/appearance.py); 0: the cosine alone
    appearance_weight: float = 0.0
    instructions: dict[str, Optional[str]] = field(default_factory=lambda: {"query": None, "document": None})

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def modalities(self) -> frozenset[str]:
        # an untrained projector gives noise: such a model is scored on text tasks only
        can_see = self.model.image_tower is not None and self.model.config.image_trained
        return frozenset({"text", "image"} if can_see else {"text"})

    def encode_text(self, texts: Sequence[str], role: Role, against: str = "texts") -> np.ndarray:
        return self.model.encode_text(list(texts), batch_size=self.batch_size, instruction=self.instructions.get(role),
                                      against=against)

    @property
    def texts_borrow_pictures(self) -> bool:
        """A text compared with images borrows the pictures its words name (config.TextAgainst): the eval then
        embeds such texts apart from texts compared with texts."""
        from mmembed.neighbour_captions import texts_borrow_pictures

        return texts_borrow_pictures(self.model)

    @property
    def image_roles_differ(self) -> bool:
        """A read-out or a neighbour-caption memory with its own query weight embeds query images differently (the
        eval then embeds both)."""
        parts = (getattr(self.model, "feature_readout", None), getattr(self.model, "neighbour_captions", None))
        return any(p is not None and p.role_weight("query") != p.role_weight("document") for p in parts)

    def encode_images(self, paths: Sequence[str], role: Role = "document") -> np.ndarray:
        return self.model.encode_image([Path(p) for p in paths], batch_size=self.batch_size, role=role)

    def encode_appearance(self, paths: Sequence[str]) -> np.ndarray:
        return self.model.encode_appearance([Path(p) for p in paths], batch_size=self.batch_size)

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"kind": "mmembed", "description": cfg.description, "dim": self.model.dim,
                "pooling": cfg.pooling.kind, "backbone": cfg.backbone.name_or_path,
                "visual_tokens": cfg.projector.num_visual_tokens if "image" in self.modalities else None,
                "label_prior": None if getattr(self.model, "label_prior", None) is None else dataclasses.asdict(self.model.label_prior.cfg),
                "feature_readout": None if getattr(self.model, "feature_readout", None) is None
                else dataclasses.asdict(self.model.feature_readout.cfg),
                "neighbour_captions": None if getattr(self.model, "neighbour_captions", None) is None
                else dataclasses.asdict(self.model.neighbour_captions.cfg),
                "appearance_weight": self.appearance_weight if "image" in self.modalities else None}


@dataclass(frozen=True)
class EncoderOptions:
    """What building an encoder may need besides its name (the openclip baseline trains on data)."""

    seed: int = 0
    batch_size: int = 32
    train_data: Sequence[Path] = ()  # train.jsonl manifests for the openclip-scratch baseline
    openclip_budget_s: float = 300.0
    openclip_steps: Optional[int] = None  # fixed step count: exact reproduction of a budgeted run
    openclip_tokenizer: str = "gemma3-270m"  # packaged backbone name, tokenizer folder, or 'bytes'
    label_prior: bool = True  # False: mmembed models are scored with their label prior switched off
    appearance_weight: float = DEFAULT_APPEARANCE_WEIGHT  # mmembed models' image -> image fusion; 0: cosine alone


def _mmembed(name: str, opts: EncoderOptions) -> Encoder:
    import torch

    import mmembed

    torch.manual_seed(opts.seed)  # random-init parts (tiny models, untrained heads) are seeded
    model = mmembed.load(name)
    if not opts.label_prior:
        model.label_prior = None
    return MMEmbedEncoder(model, batch_size=opts.batch_size, appearance_weight=opts.appearance_weight)


def _e5(name: str, opts: EncoderOptions) -> Encoder:
    from .baselines.e5 import E5Encoder

    return E5Encoder()


def _imagenet_labels(name: str, opts: EncoderOptions) -> Encoder:
    from .baselines.imagenet_labels import ImageNetLabelEncoder

    return ImageNetLabelEncoder(batch_size=opts.batch_size)


def _image_features(name: str, opts: EncoderOptions) -> Encoder:
    from .baselines.image_features import ImageFeatureEncoder

    return ImageFeatureEncoder(batch_size=opts.batch_size)


def _openclip(name: str, opts: EncoderOptions) -> Encoder:
    from .baselines.openclip_scratch import train_openclip_scratch

    return train_openclip_scratch(opts.train_data, budget_s=opts.openclip_budget_s, steps=opts.openclip_steps,
                                  seed=opts.seed, tokenizer=opts.openclip_tokenizer)


# Baseline names for --baselines; 'prompteol' is two registered mmembed models.
BASELINES: dict[str, tuple[str, ...]] = {
    "e5": ("e5",),
    "imagenet-labels": ("imagenet-labels",),
    "image-features": ("image-features",),
    "prompteol": ("gemma3-270m-prompteol", "gemma3-270m-prompteol-mean"),
    "openclip-scratch": ("openclip-scratch",),
}
_BUILDERS: dict[str, Callable[[str, EncoderOptions], Encoder]] = {
    "e5": _e5, "imagenet-labels": _imagenet_labels, "image-features": _image_features, "openclip-scratch": _openclip,
}


class UnknownEncoderError(ValueError):
    pass


def known_names() -> list[str]:
    import mmembed

    return sorted(set(mmembed.list_models()) | set(_BUILDERS))


def check_encoder_name(name: str) -> None:
    """Fail before any model loads: an unknown name lists the models and baselines that exist."""
    import mmembed

    if name in _BUILDERS or name in mmembed.list_models() or Path(name).expanduser().is_dir():
        return
    raise UnknownEncoderError(
        f"unknown model {name!r}; models: {', '.join(mmembed.list_models())}; "
        f"baselines: {', '.join(sorted(_BUILDERS))} (or a saved model folder)"
    )


def expand_baselines(spec: Optional[str]) -> list[str]:
    """'e5,prompteol' -> encoder names; unknown baseline names list the known ones."""
    names: list[str] = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part not in BASELINES:
            raise UnknownEncoderError(f"unknown baseline {part!r}; known baselines: {', '.join(BASELINES)}")
        names.extend(BASELINES[part])
    return names


def resolve_encoder(name: str, opts: EncoderOptions) -> Encoder:
    check_encoder_name(name)
    return _BUILDERS.get(name, _mmembed)(name, opts)
