"""The machine's measured matmul ceiling: best GFLOP/s of large square matmuls, fp32 and bf16.

Text/image throughput is reported as a fraction of this number (an 'achieved / possible' ratio
that means something on any CPU). Run:  python benchmarks/matmul_ceiling.py [--threads 2]
Import:  from benchmarks.matmul_ceiling import matmul_ceiling; matmul_ceiling(torch.bfloat16)
"""
from __future__ import annotations

import argparse
import time

import torch

SIZES = (1024, 2048, 3072)


def gflops(n: int, dtype: torch.dtype, repeats: int = 5, min_seconds: float = 0.5) -> float:
    """Best-of-`repeats` GFLOP/s of an (n, n) @ (n, n) matmul (2 n^3 flops)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: packing, thread pool start
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:  # enough calls per sample that timer noise does not matter
            torch.mm(a, b)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = max(best, 2 * n**3 * calls / elapsed / 1e9)
    return best


def matmul_ceiling(dtype: torch.dtype = torch.bfloat16, threads: int = 2, sizes=SIZES) -> float:
    """The best GFLOP/s over `sizes` with `threads` threads."""
    torch.set_num_threads(threads)
    return max(gflops(n, dtype) for n in sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"matmul ceiling, torch {torch.__version__}, {args.threads} threads (best of 5 samples of >= 0.5 s)")
    print(f"{'n':>6} {'fp32 GFLOP/s':>14} {'bf16 GFLOP/s':>14}")
    best = {torch.float32: 0.0, torch.bfloat16: 0.0}
    for n in SIZES:
        row = {dt: gflops(n, dt) for dt in best}
        for dt, v in row.items():
            best[dt] = max(best[dt], v)
        print(f"{n:>6} {row[torch.float32]:>14.1f} {row[torch.bfloat16]:>14.1f}")
    print(f"ceiling: fp32 {best[torch.float32]:.1f} GFLOP/s, bf16 {best[torch.bfloat16]:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
