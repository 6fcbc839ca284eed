"""Images/s of the whole image path by number of visual tokens (1/4/16/49).

Whole path = decode + letterbox (PIL) -> EfficientNet-Lite0 (fp32) -> projector -> Gemma 3 270M
(the config's dtype, printed; LoRA attached as the trained model runs) -> pooling, through
`model.encode_image`. The
projector is untrained: `image_trained=True` is set for this SPEED-ONLY run (the embeddings
are noise). A breakdown times the stages separately on the same batch. The last lines time the
add-ons of image embeddings at 4 tokens in one process, best of 2 alternating runs: none, the label prior
(mmembed/label_prior.py: the tower's classifier + top-k label mix), and the prior plus the gated feature read-out
(mmembed/feature_readout.py), the shipped model's image path.

    flock /tmp/mmembed-heavy.lock python benchmarks/bench_images.py [--images 64] [--batch 32]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

TOKENS = (1, 4, 16, 49)


def sample_images(n: int) -> list:
    """Real emoji / clip art PNGs when the datasets are built, else random RGB arrays."""
    for root in (Path("/work/datasets/clipart/images"), Path("/work/datasets/emoji/images")):
        paths = sorted(root.rglob("*.png"))[:n] if root.is_dir() else []
        if len(paths) == n:
            return paths
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (256, 256, 3), dtype=np.uint8) for _ in range(n)]


def build(config: str, tokens: int, label_prior: bool = False, feature_readout: bool = False):
    import mmembed
    from mmembed.config import FeatureReadoutConfig, LabelPriorConfig
    from mmembed.model import MMEmbedModel

    cfg = mmembed.get_config(config)
    cfg.projector.num_visual_tokens = tokens
    cfg.image_trained = True  # speed only: the projector is random
    cfg.label_prior = LabelPriorConfig() if label_prior else None  # zero label embeddings: same compute
    # the shipped read-out's shape (linear, gated); unfitted weights cost the same
    cfg.feature_readout = FeatureReadoutConfig(weight=0.25, confidence_gate=True) if feature_readout else None
    return MMEmbedModel(cfg)


def addon_overhead(config: str, images, batch: int) -> None:
    """Images/s at 4 tokens without add-ons, with the label prior, and with the prior and the gated feature read-out
    (the shipped model's image path), in one process, best of 2 alternating runs."""
    model = build(config, 4, label_prior=True, feature_readout=True)
    prior, readout = model.label_prior, model.feature_readout
    settings = {"none": (None, None), "label prior": (prior, None), "label prior + read-out": (prior, readout)}
    model.encode_image(images[:batch], batch_size=batch)  # warm-up
    best = dict.fromkeys(settings, float("inf"))
    for _ in range(2):
        for name, (p, r) in settings.items():
            model.label_prior, model.feature_readout = p, r
            t = time.perf_counter()
            model.encode_image(images, batch_size=batch)
            best[name] = min(best[name], time.perf_counter() - t)
    n = len(images)
    for name in settings:
        print(f"add-ons at 4 tokens, {name}: {n / best[name]:.1f} images/s (time ratio to none "
              f"{best[name] / best['none']:.3f})")


def stage_times(model, images, batch: int) -> dict[str, float]:
    """Seconds per image of: preprocessing, tower + projector, backbone + pooling."""
    items = images[:batch]
    t0 = time.perf_counter()
    pixels = model.pixels(items)  # (b, 3, 224, 224)
    t1 = time.perf_counter()
    with torch.inference_mode():
        visual = model.visual_tokens(pixels)  # (b, k, d)
        t2 = time.perf_counter()
        plans = model.text.image_plans(len(items), model.num_visual_tokens)
        model(plans, visual)
    t3 = time.perf_counter()
    n = len(items)
    return {"preprocess": (t1 - t0) / n, "tower+projector": (t2 - t1) / n, "backbone+pool": (t3 - t2) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description="images/s by number of visual tokens")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", default="gemma3-270m-mm-untrained", help="registered config (tiny-random: smoke test)")
    parser.add_argument("--tokens", default=",".join(map(str, TOKENS)), help="visual token counts, comma-separated "
                        "(empty: only the add-on line)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = sample_images(args.images)
    kind = "PNG files" if isinstance(images[0], Path) else "random 256x256 arrays"
    print(f"image path of {args.config} (tower + projector + backbone + pooling), {args.images} {kind}, "
          f"batch {args.batch}, {args.threads} threads, torch {torch.__version__}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'tokens':>6} {'dtype':>9} {'lora':>4} {'seq len':>7} {'load s':>7} {'images/s':>9} {'ms/img':>7} | "
          f"{'preproc':>8} {'tower':>8} {'backbone':>9} (ms/img)")
    for k in (int(x) for x in args.tokens.split(",") if x):
        t = time.perf_counter()
        model = build(args.config, k)
        load = time.perf_counter() - t
        model.encode_image(images[: args.batch], batch_size=args.batch)  # warm-up
        t = time.perf_counter()
        emb = model.encode_image(images, batch_size=args.batch)
        elapsed = time.perf_counter() - t
        assert emb.shape == (len(images), model.dim)
        stages = stage_times(model, images, args.batch)
        seq = len(model.text.image_plans(1, k)[0])
        dtype = str(next(model.backbone.parameters()).dtype).replace("torch.", "")
        lora = "yes" if model.config.lora is not None else "no"
        print(f"{k:>6} {dtype:>9} {lora:>4} {seq:>7} {load:>7.1f} {len(images) / elapsed:>9.1f} {1000 * elapsed / len(images):>7.1f} | "
              f"{1000 * stages['preprocess']:>8.1f} {1000 * stages['tower+projector']:>8.1f} "
              f"{1000 * stages['backbone+pool']:>9.1f}")
        del model
    addon_overhead(args.config, images, args.batch)


if __name__ == "__main__":
    main()
