"""An open_clip model trained from scratch on the same training manifests: "train a CLIP yourself".

No CLIP weights exist offline, so the fair alternative to mmembed is a small CLIP trained on the
same pairs for the same wall-clock budget, with open_clip's own model and loss code
(`open_clip.create_model(..., pretrained=None)`, `open_clip.loss.ClipLoss`).

Text goes through the multilingual Gemma tokenizer, re-indexed to the token ids that occur in the
training captions (the full 262k vocabulary would be a 67M-parameter table for a tiny model);
unseen tokens map to <unk>. Images are letterboxed to 64 px once, before the clock starts.

A time budget makes the step count machine dependent: the step count reached is recorded, and
`steps=N` replays exactly that run (same seed -> same batches -> same weights).
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ...tokenizer import HFTokenizer, TextTokenizer, byte_level_tokenizer
from ..tasks import Role

PAD, UNK, EOS, SOT = 0, 1, 2, 3  # compact ids; open_clip pools the text tower at EOS (pool_type='eos')


@dataclass(frozen=True)
class ScratchClipConfig:
    image_size: int = 64
    patch_size: int = 8
    width: int = 256
    layers: int = 4
    heads: int = 4
    embed_dim: int = 256
    context_length: int = 32
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_steps: int = 50

    def open_clip_cfg(self, vocab_size: int) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {"image_size": self.image_size, "patch_size": self.patch_size, "width": self.width,
                           "layers": self.layers, "head_width": self.width // self.heads, "mlp_ratio": 4.0},
            "text_cfg": {"context_length": self.context_length, "vocab_size": vocab_size, "width": self.width,
                         "heads": self.heads, "layers": self.layers, "pool_type": "eos", "eos_id": EOS, "pad_id": PAD},
        }


class CompactTokenizer:
    """A multilingual tokenizer restricted to the ids seen in the training captions."""

    def __init__(self, tokenizer: TextTokenizer, texts: Sequence[str], context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length
        seen = sorted({i for ids in self._raw(texts) for i in ids})
        self.index = {tok: SOT + 1 + n for n, tok in enumerate(seen)}  # original id -> compact id
        self.vocab_size = SOT + 1 + len(seen)

    def _raw(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode_batch(texts)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, context_length) long: <sot> tokens <eos> <pad>..., content cut to fit."""
        out = torch.full((len(texts), self.context_length), PAD, dtype=torch.long)
        for i, ids in enumerate(self._raw(texts)):
            seq = [SOT] + [self.index.get(t, UNK) for t in ids][: self.context_length - 2] + [EOS]
            out[i, : len(seq)] = torch.tensor(seq)
        return out


def load_tokenizer(name: str) -> TextTokenizer:
    """A packaged backbone's tokenizer ('gemma3-270m'), a local tokenizer folder, or 'bytes' (tests)."""
    from mmembed.assets import PACKAGED_BACKBONES
    from mmembed.backbone import packaged_tokenizer

    if name == "bytes":
        return byte_level_tokenizer()
    if name in PACKAGED_BACKBONES:
        return packaged_tokenizer(name)
    from transformers import AutoTokenizer

    return HFTokenizer(AutoTokenizer.from_pretrained(name))


def training_pairs(manifests: Sequence[Path]) -> tuple[list[str], list[str], list[list[str]]]:
    """(concept ids, image paths, captions per concept) from the image records of train manifests."""
    from ..data import load_manifest

    images: dict[str, str] = {}
    captions: dict[str, list[str]] = {}
    for path in manifests:
        ds = load_manifest(Path(path), Path(path).parent.name)
        for r in ds.records:
            if r.image_path is None:
                continue  # text-text pairs cannot train an image-text CLIP
            key = f"{ds.name}/{r.record.concept}"
            images.setdefault(key, str(r.image_path))
            captions.setdefault(key, []).append(r.record.caption)
    concepts = sorted(images)
    if len(concepts) < 2:
        raise ValueError(f"openclip-scratch needs image-caption training pairs; found {len(concepts)} concepts in "
                         f"{', '.join(map(str, manifests)) or 'no train manifests'}")
    return concepts, [images[c] for c in concepts], [captions[c] for c in concepts]


def _pixels(paths: Sequence[str], size: int, chunk: int = 256) -> torch.Tensor:
    """(n, 3, size, size) bfloat16: preprocessed once, kept compact in memory."""
    from mmembed.images import images_to_tensor

    parts = [images_to_tensor(paths[s : s + chunk], size, (0.5,) * 3, (0.5,) * 3, s).to(torch.bfloat16)
             for s in range(0, len(paths), chunk)]
    return torch.cat(parts) if parts else torch.zeros((0, 3, size, size), dtype=torch.bfloat16)


def _create_model(cfg: ScratchClipConfig, vocab_size: int):
    import open_clip

    with tempfile.TemporaryDirectory() as tmp:  # a local-dir config: no change to open_clip's registry
        (Path(tmp) / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg.open_clip_cfg(vocab_size)}))
        logging.disable(logging.WARNING)  # its "no weights found, initialized randomly" is the point here
        try:
            return open_clip.create_model(f"local-dir:{tmp}", pretrained=None, output_dict=True)
        finally:
            logging.disable(logging.NOTSET)


@dataclass
class ScratchClipRun:
    steps: int = 0
    train_seconds: float = 0.0
    prepare_seconds: float = 0.0
    final_loss: float = float("nan")
    pairs: int = 0
    concepts: int = 0
    vocab_size: int = 0
    config: dict[str, Any] = field(default_factory=dict)


class OpenClipScratchEncoder:
    name = "openclip-scratch"
    modalities = frozenset({"text", "image"})

    def __init__(self, model, tokenizer: CompactTokenizer, cfg: ScratchClipConfig, run: ScratchClipRun):
        self.model, self.tokenizer, self.cfg, self.run = model.eval(), tokenizer, cfg, run

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str], role: Role) -> np.ndarray:
        out = [self.model.encode_text(self.tokenizer(texts[s : s + 256]), normalize=True) for s in range(0, len(texts), 256)]
        return torch.cat(out).float().numpy() if out else np.zeros((0, self.cfg.embed_dim), np.float32)

    @torch.inference_mode()
    def encode_images(self, paths: Sequence[str], role: Role = "document") -> np.ndarray:  # symmetric: role unused
        out = [self.model.encode_image(_pixels(paths[s : s + 256], self.cfg.image_size).float(), normalize=True)
               for s in range(0, len(paths), 256)]
        return torch.cat(out).float().numpy() if out else np.zeros((0, self.cfg.embed_dim), np.float32)

    def describe(self) -> dict[str, Any]:
        """Deterministic facts only (seconds go to timings(): results.json stays byte-identical)."""
        training = {k: v for k, v in asdict(self.run).items() if not k.endswith("_seconds")}
        return {"kind": "baseline", "dim": self.cfg.embed_dim, "training": training,
                "description": f"open_clip ViT ({self.cfg.layers}x{self.cfg.width}, {self.cfg.image_size}px) + text "
                               f"transformer trained from scratch for {self.run.steps} steps"}

    def timings(self) -> dict[str, float]:
        return {"train_seconds": round(self.run.train_seconds, 2), "prepare_seconds": round(self.run.prepare_seconds, 2)}


def train_openclip_scratch(
    manifests: Sequence[Path],
    *,
    budget_s: float = 300.0,
    steps: Optional[int] = None,
    seed: int = 0,
    tokenizer: str = "gemma3-270m",
    cfg: ScratchClipConfig = ScratchClipConfig(),
) -> OpenClipScratchEncoder:
    """Train until `steps` (if given) or until `budget_s` seconds of training have passed."""
    from open_clip.loss import ClipLoss

    t0 = time.perf_counter()
    concepts, paths, captions = training_pairs(manifests)
    tok = CompactTokenizer(load_tokenizer(tokenizer), [c for caps in captions for c in caps], cfg.context_length)
    pixels = _pixels(paths, cfg.image_size)  # (n, 3, s, s)
    torch.manual_seed(seed)
    model = _create_model(cfg, tok.vocab_size).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup_steps))
    loss_fn = ClipLoss()
    gen = torch.Generator().manual_seed(seed)
    run = ScratchClipRun(pairs=sum(map(len, captions)), concepts=len(concepts), vocab_size=tok.vocab_size,
                         config=asdict(cfg), prepare_seconds=time.perf_counter() - t0)
    batch = min(cfg.batch_size, len(concepts))
    start = time.perf_counter()
    while (steps is None and time.perf_counter() - start < budget_s) or (steps is not None and run.steps < steps):
        # distinct concepts per batch: ClipLoss takes the diagonal as the only positives
        idx = torch.randperm(len(concepts), generator=gen)[:batch]
        pick = torch.randint(0, 1 << 30, (batch,), generator=gen)
        texts = [captions[i][int(p) % len(captions[i])] for i, p in zip(idx.tolist(), pick)]
        out = model(pixels[idx].float(), tok(texts))
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():  # CLIP clamps the learned temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        run.steps += 1
        run.final_loss = loss.item()
    run.train_seconds = time.perf_counter() - start
    return OpenClipScratchEncoder(model, tok, cfg, run)
