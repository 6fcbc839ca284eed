"""Training throughput: pairs/s and peak RSS per step, plain step vs cached-gradient (GradCache).

Each mode runs in a fresh subprocess so its peak RSS is its own. Uses the shipped recipe's data
(build it first: mmembed data build emoji|clipart|parallel --out data/build/NAME).

    python benchmarks/bench_train.py [--config configs/gemma3-270m-mm.toml] [--steps 3] [--chunk 16] [--lora-r 8]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_mode(config: str, steps: int, chunk: int, lora_r: int) -> dict:
    import torch

    from mmembed.training.config import TrainConfig
    from mmembed.training.trainer import Trainer

    torch.set_num_threads(2)
    cfg = TrainConfig.from_toml(config)
    cfg.dev, cfg.out, cfg.steps = [], "/tmp/mmembed-bench-train", steps + 1
    cfg.grad_cache_chunk = chunk or None
    cfg.lora_r = lora_r or None
    tr = Trainer(cfg, progress=False)
    tr.train_step(0)  # warm-up (fills caches for its own batch)
    t = time.perf_counter()
    for step in range(1, steps + 1):
        tr.train_step(step)
    dt = time.perf_counter() - t
    return {"mode": ("grad-cache chunk %d" % chunk) if chunk else "plain", "lora_r": lora_r,
            "pairs_per_s": round(cfg.batch_size * steps / dt, 2), "s_per_step": round(dt / steps, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/gemma3-270m-mm.toml")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--lora-r", type=int, default=0, help="0: the shipped frozen-backbone recipe")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: "chunk"
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_mode(args.config, args.steps, int(args.one), args.lora_r)))
        return
    print(f"training benchmark: {args.config}, {args.steps} timed steps after 1 warm-up, lora_r={args.lora_r}")
    for chunk in (0, args.chunk):
        out = subprocess.run([sys.executable, __file__, "--config", args.config, "--steps", str(args.steps),
                              "--lora-r", str(args.lora_r), "--one", str(chunk)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        print(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
