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

from .assets import packaged_backbone_dir
from .config import BackboneConfig

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


def load_backbone(cfg: BackboneConfig) -> tuple[nn.Module, object]:
    """Return (base transformer without LM head, tokenizer) for a backbone config."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    dtype = resolve_dtype(cfg.dtype)
    if cfg.source == "random":
        from .text_frontend import byte_level_tokenizer

        tokenizer = byte_level_tokenizer()
        kwargs = dict(cfg.random_config)
        model_type = kwargs.pop("model_type")
        kwargs.setdefault("vocab_size", len(tokenizer))
        hf_config = AutoConfig.for_model(model_type, **kwargs)
        hf_config._attn_implementation = "sdpa"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same tiny model every time: tests compare across loads
            model = AutoModel.from_config(hf_config, dtype=dtype)
        return model.eval(), tokenizer

    if cfg.source == "packaged":
        folder = _verified_cache_while_importing(cfg.name_or_path)
        model = AutoModel.from_pretrained(folder, dtype=dtype)
        return model.eval(), fast_tokenizer(folder)
    if cfg.source != "pretrained":
        raise ValueError(f"backbone.source must be packaged, pretrained or random, got {cfg.source!r}")
    folder = cfg.name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder, dtype=dtype)
    except OSError as err:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or not Path(str(folder)).exists()
        hint = " (no hub access here? use a local folder or a packaged backbone)" if offline else ""
        raise BackboneLoadError(f"could not load backbone {folder!r}{hint}: {err}") from err
    return model.eval(), tokenizer


def _verified_cache_while_importing(name: str) -> Path:
    """Hash-check (or build) the cache in a thread while transformers' ~2 s of imports run here."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        folder = pool.submit(packaged_backbone_dir, name)
        import transformers.modeling_utils  # noqa: F401  (hashlib releases the GIL: both cores work)

        return folder.result()


def fast_tokenizer(folder: Path):
    """The cache's tokenizer.json straight into a fast tokenizer (~1 s; GemmaTokenizer takes ~3.5 s).

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
