"""The shared LLM backbone: loading (packaged / hub-or-path / random) and the attention switch.

Only the base transformer is kept (`AutoModel`): the LM head is never run for embeddings.
Causal vs bidirectional attention (LLM2Vec) is chosen by the 4D additive mask we pass in;
transformers passes a prepared 4D mask through unchanged for every architecture, so no attention
class is copied or patched.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from .assets import PACKAGED_BACKBONES, SENTENCEPIECE_FILE, packaged_backbone_dir
from .config import BackboneConfig
from .tokenizer import HFTokenizer, SentencePieceTokenizer, TextTokenizer, byte_level_tokenizer

logger = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def native_bf16() -> bool:
    """True where bf16 matmuls are fast: a CUDA device, or a CPU with AVX512-BF16 / AMX-BF16."""
    if torch.cuda.is_available():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_dtype(name: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if native_bf16() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"backbone.dtype must be auto, bfloat16 or float32, got {name!r}")
    return DTYPES[name]


class BackboneLoadError(RuntimeError):
    pass


def load_backbone(cfg: BackboneConfig) -> tuple[nn.Module, TextTokenizer]:
    """Return (base transformer without LM head, tokenizer) for a backbone config."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    dtype = resolve_dtype(cfg.dtype)
    if cfg.source == "random":
        tokenizer = byte_level_tokenizer()
        kwargs = dict(cfg.random_config)
        model_type = kwargs.pop("model_type")
        kwargs.setdefault("vocab_size", tokenizer.vocab_size)
        hf_config = AutoConfig.for_model(model_type, **kwargs)
        hf_config._attn_implementation = "sdpa"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same tiny model every time: tests compare across loads
            model = AutoModel.from_config(hf_config, dtype=dtype)
        if cfg.num_layers is not None:  # built whole, then cut: layer i keeps the same random weights
            _cut_layers(model.config, cfg)
            model.layers = model.layers[: cfg.num_layers]
        return _final_norm(model.eval(), cfg), tokenizer

    if cfg.source == "packaged":
        folder = _verified_cache_while_importing(cfg.name_or_path)
        model = _from_pretrained(folder, dtype, cfg)
        return _final_norm(model.eval(), cfg), _cached_tokenizer(folder, cfg.name_or_path)
    if cfg.source != "pretrained":
        raise ValueError(f"backbone.source must be packaged, pretrained or random, got {cfg.source!r}")
    folder = cfg.name_or_path
    try:
        tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(folder))
        model = _from_pretrained(folder, dtype, cfg)
    except OSError as err:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not Path(str(folder)).exists()
        hint = (f" (no folder of that name in {Path.cwd()}, and no hub access here? use a local folder or a "
                "packaged backbone)") if offline else ""
        raise BackboneLoadError(f"could not load backbone {folder!r}{hint}: {err}") from err
    return _final_norm(model.eval(), cfg), tokenizer


def _from_pretrained(folder, dtype: torch.dtype, cfg: BackboneConfig) -> nn.Module:
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    # A 0.3 s "Loading weights" bar on every load() is noise; the user's own setting is restored.
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        if cfg.num_layers is None:
            return AutoModel.from_pretrained(folder, dtype=dtype)
        hf_config = AutoConfig.from_pretrained(folder)
        _cut_layers(hf_config, cfg)  # the later layers are never built, so their weights never load
        # ...which transformers reports as "unexpected" keys (and, given a config object, checks a
        # tensor-parallel plan we do not use): by design here, so keep those two reports quiet
        quiet = [logging.getLogger(f"transformers.{name}") for name in ("modeling_utils", "distributed.tensor_parallel")]
        levels = [q.level for q in quiet]
        for q in quiet:
            q.setLevel(logging.ERROR)
        try:
            return AutoModel.from_pretrained(folder, dtype=dtype, config=hf_config)
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def _cut_layers(hf_config, cfg: BackboneConfig) -> None:
    """Make a transformers config describe only the first cfg.num_layers decoder layers."""
    if cfg.num_layers is None:
        return
    if not 1 <= cfg.num_layers <= hf_config.num_hidden_layers:
        raise ValueError(f"backbone.num_layers={cfg.num_layers} but {cfg.name_or_path!r} has "
                         f"{hf_config.num_hidden_layers} layers")
    hf_config.num_hidden_layers = cfg.num_layers
    if getattr(hf_config, "layer_types", None) is not None:  # Gemma 3: sliding/full pattern per layer
        hf_config.layer_types = hf_config.layer_types[: cfg.num_layers]


def _final_norm(model: nn.Module, cfg: BackboneConfig) -> nn.Module:
    if not cfg.final_norm:
        model.norm = nn.Identity()
    return model


def _verified_cache_while_importing(name: str) -> Path:
    """Hash-check (or build) the packaged backbone's cache in a thread while transformers' ~3 s of
    imports run here."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        folder = pool.submit(packaged_backbone_dir, name)
        import transformers.modeling_utils  # noqa: F401  (hashlib releases the GIL: both cores work)

        return folder.result()


def packaged_tokenizer(name: str) -> TextTokenizer:
    """The tokenizer of a packaged backbone alone, without its weights."""
    return _cached_tokenizer(packaged_backbone_dir(name), name)


def _cached_tokenizer(folder: Path, name: str) -> TextTokenizer:
    if PACKAGED_BACKBONES[name].sentencepiece:  # rebuilt from the GGUF: 0.07 s instead of 1.1-1.4 s
        return SentencePieceTokenizer(folder / SENTENCEPIECE_FILE)
    return HFTokenizer(fast_tokenizer(folder))


def fast_tokenizer(folder: Path):
    """The cache's tokenizer.json straight into a fast tokenizer (1-1.4 s for Gemma's 262k vocab).

    mmembed adds BOS itself and never calls add_special_tokens, so the model-specific tokenizer
    class adds nothing here."""
    from transformers import PreTrainedTokenizerFast

    specials = json.loads((folder / "tokenizer_config.json").read_text())
    keys = ("bos_token", "eos_token", "pad_token", "unk_token")
    return PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"), **{k: specials[k] for k in keys if isinstance(specials.get(k), str)}
    )


def attention_bias(mask: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """(b, t) 0/1 padding mask -> (b, 1, t, t) additive bias: 0 where attended, dtype-min elsewhere.

    Padded query rows are never pooled; with left padding they may see no key at all, which the
    finite minimum (not -inf) keeps NaN-free.
    """
    keys = mask[:, None, None, :].bool()  # (b, 1, 1, t)
    allowed = keys.expand(-1, 1, mask.shape[1], -1)
    if causal:
        t = mask.shape[1]
        allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
    bias = torch.zeros(allowed.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions count real tokens only, so left and right padding give the same states."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def hidden_size(model: nn.Module) -> int:
    return int(model.config.hidden_size)


def input_embeddings(model: nn.Module) -> nn.Module:
    # Gemma's embedding module multiplies by sqrt(hidden); calling it keeps that scale.
    return model.get_input_embeddings()
