"""Training run configuration: a TOML file -> typed dataclasses (no exec, no name sniffing)."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, get_args

from ..config import (AttentionKind, FeatureReadoutConfig, ImageCenteringConfig, LabelPriorConfig,
                      NeighbourCaptionsConfig, StorageDtype, token_grid_side)

LossKind = Literal["clip", "siglip"]  # symmetric InfoNCE (open_clip ClipLoss) or sigmoid (SigLipLoss)


@dataclass
class SourceSpec:
    """One training source: a manifest split (or a custom pairs file) and its sampling weight."""

    name: str
    path: str  # a manifest (.../train.jsonl) or, with custom=true, a .jsonl/.csv/image folder of pairs
    weight: float = 1.0
    custom: bool = False
    langs: Optional[list[str]] = None  # keep only these caption languages
    kinds: Optional[list[str]] = None  # keep only these caption kinds (name, keyword, title...)
    max_per_concept_lang: Optional[int] = None
    # true: each step draws ONE language for this source's share of the batch, so its in-batch negatives
    # are other texts in that language (as in a bitext test), not texts that differ by script alone
    one_lang_per_batch: bool = False
    # set: before step 1 the base model mines each text-text pair a hard negative, drawn from the top-k
    # wrong captions in its language (mmembed.training.mining); written to the run folder, reused on resume
    hard_negatives_top_k: Optional[int] = None
    # how a mined negative is used: "column" = an extra candidate for its pair's anchor (anchor -> caption
    # side only); "batch" = the negative's own pair joins the batch, so the confusable concept is an
    # in-batch negative in BOTH directions (its English anchor for the caption, its caption for the anchor)
    hard_negatives_as: str = "column"
    # true: the run's `teacher` embeds this source's texts, and its text-text pairs add the distillation
    # term (the teacher's in-batch similarity distribution as a soft target; mmembed.training.teacher)
    distill: bool = False
    # set (e.g. "en"): each caption is paired with its concept's caption of the same kind in this language
    # instead of with its image, so an image manifest gives cross-lingual text-text pairs (CLDR emoji names
    # in 100+ languages -> their English names); this language's own captions and concepts without one are
    # left out
    anchor_lang: Optional[str] = None
    # leave out concepts with one of these "category" captions (e.g. ["flags"]: emoji flags name countries,
    # which the parallel dataset's dev/test concepts hold as territory names)
    drop_categories: Optional[list[str]] = None

    def __post_init__(self) -> None:
        if self.custom and (self.anchor_lang or self.drop_categories):
            raise ValueError(f"source {self.name!r}: anchor_lang and drop_categories read a dataset manifest's "
                             f"concepts, but custom = true pairs ({self.path}) have none; build the pairs you "
                             f"want into the file instead")


@dataclass
class DevSpec:
    """A dev manifest scored every `eval_every` steps (text->anchor R@1 per language)."""

    name: str
    path: str
    langs: list[str] = field(default_factory=lambda: ["en", "de", "zh", "hi", "sw"])
    kinds: list[str] = field(default_factory=lambda: ["name", "sentence", "title"])
    max_concepts: int = 150


@dataclass
class TrainConfig:
    base: str = "gemma3-270m-mm-untrained"  # registered name or saved folder to start from
    # saved models averaged uniformly with `base` into the starting point (a model soup, mmembed.training.soup:
    # runs of one base, e.g. two recipes fine-tuned from it); with steps = 0 the recipe exports the soup itself
    soup: list[str] = field(default_factory=list)
    out: str = "runs/mm"
    name: str = "gemma3-270m-mm"  # the trained model's name (its folder under adapters/ when shipped)
    sources: list[SourceSpec] = field(default_factory=list)
    dev: list[DevSpec] = field(default_factory=list)
    steps: int = 200
    batch_size: int = 64  # pairs per step (global across ranks)
    grad_accum: int = 1  # micro-batches per optimizer step, each with its own in-batch negatives
    grad_cache_chunk: Optional[int] = None  # set: cached-gradient step with chunks of this size
    embed_chunk: int = 64  # sequences per backbone forward inside a step (raise it on a GPU)
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 10
    loss: LossKind = "clip"
    matryoshka: bool = True  # also train the model config's matryoshka_dims
    lora_r: Optional[int] = None  # set: add LoRA of this rank to the backbone (overrides base config)
    lora_targets: Optional[list[str]] = None  # backbone modules that get LoRA (default: the attention projections)
    freeze_lora: bool = False  # keep a base's LoRA fixed: only projector/head/temperature train (text states cached)
    # with freeze_lora: keep the pooler and head fixed too, so every text embedding stays exactly the base's and
    # only the image projector (and temperature) train: the images move into the base's text space, which a
    # text-only stage (e.g. a LoRA tuned for cross-lingual retrieval) left unchanged for them
    freeze_text_side: bool = False
    # set: only the LoRA of the last N backbone layers trains (the rest stays as the base has it); for a
    # text-only run, backward then stops at layer L-N (about 2x faster per step on a CPU with N = L/3)
    lora_train_layers: Optional[int] = None
    unfreeze_tower_blocks: int = 0  # >0: train the last N blocks of the image tower too
    # set: images become this many visual tokens (a perfect square) instead of the base's; the base's projector
    # MLP is kept and its position vectors resampled to the new grid (VisualProjector.resize_tokens)
    num_visual_tokens: Optional[int] = None
    # set: the trained model attends this way ("causal" or "bidirectional", LLM2Vec / EmbeddingGemma style),
    # whatever its base did; the LoRA then learns under that mask, and the saved model keeps it
    attention: Optional[AttentionKind] = None
    autocast_bf16: Literal["auto", "on", "off"] = "auto"  # auto: on where bf16 is native
    # set: how the exported model stores its trained float32 tensors (ModelConfig.storage_dtype; "float16" halves
    # them on disk); unset: as the base does. Checkpoints always keep them exact
    storage_dtype: Optional[StorageDtype] = None
    on_error: Literal["skip", "reject"] = "skip"  # bad rows of custom pairs
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int = 50
    keep_checkpoints: int = 2
    # [label_prior] table: give the trained model a label prior (mmembed.label_prior); a base's own is kept
    label_prior: Optional[LabelPriorConfig] = None
    label_prior_in_loss: bool = False  # image anchors get the prior in the loss too (needs freeze_lora)
    # [image_centering] table: the trained model's image embeddings lose part of their mean over the run's
    # training images (mmembed.image_centering), refitted before dev scoring and export; a base's own is kept
    image_centering: Optional[ImageCenteringConfig] = None
    # [feature_readout] table: the trained model's image embeddings add a direct read-out of the tower's pooled
    # features (mmembed.feature_readout), fitted on the run's pictures before dev scoring and export. Without the
    # table a base's read-out is kept unchanged (fitting it to a small fine-tuning set would spoil it)
    feature_readout: Optional[FeatureReadoutConfig] = None
    # [neighbour_captions] table: the trained model's image embeddings add the captions of their look-alike training
    # pictures (mmembed.neighbour_captions), a memory built from the run's pictures before dev scoring and export.
    # Without the table a base's memory is kept if the run leaves the text side as it was, and dropped (with a
    # warning) if the run trains it: its values are text embeddings of the old text side. Built again at every dev
    # scoring (it embeds every sampled caption: ~6 min for 7k pictures on 2 CPU cores)
    neighbour_captions: Optional[NeighbourCaptionsConfig] = None
    # distillation from a text teacher (mmembed.training.teacher.TEACHERS, e.g. "e5") on the sources with
    # distill = true: loss += distill_weight * KL(teacher || student) of the in-batch similarity
    # distributions, the teacher's cosines divided by distill_temperature (e5's cosines of one-language
    # batches span ~0.7-0.95: at 0.01 its positive gets 0.7-0.95 of the mass, as sharp as the student)
    teacher: Optional[str] = None
    distill_weight: float = 1.0
    distill_temperature: float = 0.01
    distill_only_where_teacher_is_right: bool = True  # a query the teacher ranks wrongly gets no teacher term
    # embedding-level term (mmembed.training.teacher.fit_teacher_map): loss += distill_embedding_weight *
    # mean(1 - cos((x - mean_x) @ W, teacher(x) - mean_t)) over the distilled texts, W fitted by ridge on the
    # base before step 1 (0: off). distill_weight = 0 with this > 0 distills by the embedding term alone
    distill_embedding_weight: float = 0.0

    def __post_init__(self) -> None:
        # here, not in from_dict: configs built in code (the Python API, tests) are checked too
        if self.unfreeze_tower_blocks < 0:
            raise ValueError(f"unfreeze_tower_blocks must be >= 0 (how many of the tower's last blocks train), "
                             f"got {self.unfreeze_tower_blocks}")
        if self.freeze_text_side and not self.freeze_lora:
            raise ValueError("freeze_text_side = true needs freeze_lora = true (the LoRA is part of the text side)")
        if self.num_visual_tokens is not None:
            token_grid_side(self.num_visual_tokens)
        if self.attention is not None and self.attention not in get_args(AttentionKind):
            raise ValueError(f"attention must be one of {', '.join(get_args(AttentionKind))}, got {self.attention!r}")
        if self.storage_dtype is not None and self.storage_dtype not in get_args(StorageDtype):
            raise ValueError(f"storage_dtype must be one of {', '.join(get_args(StorageDtype))}, got {self.storage_dtype!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        # a misspelt loss would otherwise train with InfoNCE without a word (the loss picks siglip by name)
        if self.loss not in get_args(LossKind):
            raise ValueError(f"loss must be one of {', '.join(get_args(LossKind))}, got {self.loss!r}")
        if self.grad_cache_chunk is not None and self.grad_cache_chunk < 1:
            raise ValueError(f"grad_cache_chunk must be >= 1 (sequences per cached-gradient chunk), got {self.grad_cache_chunk}")
        # here, so configs built in code are checked too (custom triplet rows: training.setup.build_sources)
        if self.loss == "siglip" and (mined := [s.name for s in self.sources if s.hard_negatives_top_k is not None]):
            raise ValueError(f"source {mined[0]!r}: hard_negatives_top_k mines negatives for loss = 'clip'; "
                             f"loss = 'siglip' cannot use them")

    @classmethod
    def from_toml(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML ({err})") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> "TrainConfig":
        data = dict(data)
        data["sources"] = [_sub(SourceSpec, s, f"{where} [[sources]]") for s in data.get("sources", [])]
        data["dev"] = [_sub(DevSpec, s, f"{where} [[dev]]") for s in data.get("dev", [])]
        if data.get("label_prior") is not None:
            data["label_prior"] = _sub(LabelPriorConfig, data["label_prior"], f"{where} [label_prior]")
        if data.get("image_centering") is not None:
            data["image_centering"] = _sub(ImageCenteringConfig, data["image_centering"], f"{where} [image_centering]")
        if data.get("feature_readout") is not None:
            data["feature_readout"] = _sub(FeatureReadoutConfig, data["feature_readout"], f"{where} [feature_readout]")
        if data.get("neighbour_captions") is not None:
            data["neighbour_captions"] = _sub(NeighbourCaptionsConfig, data["neighbour_captions"],
                                              f"{where} [neighbour_captions]")
        cfg = _sub(cls, data, where)  # unknown fields and __post_init__'s checks, named with the file
        if not cfg.sources:
            raise ValueError(f"{where}: no [[sources]]: nothing to train on")
        for section, specs in (("[[sources]]", cfg.sources), ("[[dev]]", cfg.dev)):
            names = [s.name for s in specs]
            if dups := sorted({n for n in names if names.count(n) > 1}):
                # dev metrics and logs are keyed by name: a repeated one would silently hide the others
                raise ValueError(f"{where}: {section} names must be unique, repeated: {dups}")
        if cfg.lora_train_layers is not None and (cfg.lora_train_layers < 1 or cfg.freeze_lora):
            raise ValueError(f"{where}: lora_train_layers must be >= 1 and needs freeze_lora = false, "
                             f"got {cfg.lora_train_layers} with freeze_lora = {cfg.freeze_lora}")
        for spec in cfg.sources:
            if spec.hard_negatives_top_k is not None and (spec.custom or spec.hard_negatives_top_k < 1):
                raise ValueError(f"{where}: source {spec.name!r}: hard_negatives_top_k must be >= 1 and needs a dataset "
                                 f"manifest (not custom pairs), got {spec.hard_negatives_top_k} with custom = {spec.custom}")
            if spec.hard_negatives_as not in ("column", "batch"):
                raise ValueError(f"{where}: source {spec.name!r}: hard_negatives_as must be 'column' or 'batch', "
                                 f"got {spec.hard_negatives_as!r}")
            if spec.hard_negatives_as != "column" and spec.hard_negatives_top_k is None:
                raise ValueError(f"{where}: source {spec.name!r}: hard_negatives_as = {spec.hard_negatives_as!r} "
                                 f"needs hard_negatives_top_k (the negatives are mined)")
        cfg.check_distill(where)
        return cfg

    def check_distill(self, where: str = "config") -> None:
        """The teacher settings agree with each other (also called by the Trainer: the CLI builds configs too)."""
        from .teacher import check_teacher_name

        distilled = [s.name for s in self.sources if s.distill]
        if self.teacher is None:
            if self.distill_embedding_weight:
                raise ValueError(f"{where}: distill_embedding_weight = {self.distill_embedding_weight} needs a teacher "
                                 f"(e.g. teacher = \"e5\") and sources with distill = true")
            if distilled:
                raise ValueError(f"{where}: sources {distilled} have distill = true but no teacher is set "
                                 f"(e.g. teacher = \"e5\")")
            return
        try:
            check_teacher_name(self.teacher)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if not distilled:
            raise ValueError(f"{where}: teacher = {self.teacher!r} but no source has distill = true: nothing to distill")
        if not (self.distill_weight >= 0 and self.distill_embedding_weight >= 0 and self.distill_temperature > 0
                and self.distill_weight + self.distill_embedding_weight > 0):
            raise ValueError(f"{where}: distill_weight and distill_embedding_weight must be >= 0 and not both 0, "
                             f"distill_temperature > 0; got {self.distill_weight}, {self.distill_embedding_weight} "
                             f"and {self.distill_temperature}")
        if self.loss != "clip":
            raise ValueError(f"{where}: distillation needs loss = 'clip' (in-batch softmax), got {self.loss!r}")

    def start(self) -> str:
        """What the run starts from, in words for cards and descriptions: the base, or the soup it heads."""
        return f"the soup of {', '.join(repr(m) for m in [self.base, *self.soup])}" if self.soup else repr(self.base)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _sub(typ, values: dict, where: str):
    """typ(**values), with unknown fields and typ's own checks (__post_init__) reported under `where`."""
    known = {f.name for f in dataclasses.fields(typ)}
    if unknown := set(values) - known:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}; known: {sorted(known)}")
    try:
        return typ(**values)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
