"""Peak RSS of text encoding and of image encoding, each in a fresh Python process.

A fresh process per workload, so one workload's allocations never inflate the other's peak.
Each child reports its RSS after loading the model and its peak RSS (ru_maxrss) at the end.

    flock /tmp/mmembed-heavy.lock python benchmarks/bench_memory.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

CHILD_PRELUDE = """
import json, resource, time
import torch
torch.set_num_threads(2)

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
"""

WORKLOADS = {
    "python + torch + mmembed imported": """
import mmembed, mmembed.model
print(json.dumps({"after_load": rss_mb(), "peak": peak_mb(), "items": 0, "seconds": 0}))
""",
    "text: gemma3-270m-prompteol, 1024 sentences, batch 32": """
import mmembed
from pathlib import Path
texts = []
p = Path("/work/datasets/parallel/test.jsonl")
if p.is_file():
    texts = sorted({json.loads(l)["caption"] for l in p.open(encoding="utf-8")})[:1024]
texts += [f"sentence number {i} about a red apple on a wooden table" for i in range(1024 - len(texts))]
model = mmembed.load("gemma3-270m-prompteol")
after = rss_mb()
t = time.perf_counter()
model.encode_text(texts, batch_size=32)
print(json.dumps({"after_load": after, "peak": peak_mb(), "items": len(texts), "seconds": time.perf_counter() - t}))
""",
    "image: gemma3-270m-mm (untrained), 4 tokens, 64 images, batch 32": """
import mmembed, numpy as np
from mmembed.model import MMEmbedModel
from pathlib import Path
paths = sorted(Path("/work/datasets/clipart/images").rglob("*.png"))[:64]
images = paths if len(paths) == 64 else [np.random.default_rng(i).integers(0, 255, (256, 256, 3), dtype=np.uint8) for i in range(64)]
cfg = mmembed.get_config("gemma3-270m-mm-untrained")
cfg.image_trained = True  # memory/speed only
model = MMEmbedModel(cfg)
after = rss_mb()
t = time.perf_counter()
model.encode_image(images, batch_size=32)
print(json.dumps({"after_load": after, "peak": peak_mb(), "items": len(images), "seconds": time.perf_counter() - t}))
""",
}


def run_child(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD_PRELUDE + code)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    print(f"peak RSS per workload, each in a fresh process (2 threads); load average {os.getloadavg()[0]:.1f}")
    print(f"{'workload':<62} {'RSS after load MB':>18} {'peak RSS MB':>12} {'items/s':>8}")
    for name, code in WORKLOADS.items():
        r = run_child(code)
        rate = f"{r['items'] / r['seconds']:.1f}" if r["seconds"] else "-"
        print(f"{name:<62} {r['after_load']:>18.0f} {r['peak']:>12.0f} {rate:>8}")


if __name__ == "__main__":
    main()
