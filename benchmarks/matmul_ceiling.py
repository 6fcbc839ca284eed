"""The machine's measured matmul ceiling: best GFLOP/s of large square matmuls, fp32 and bf16.

Text/image throughput is reported as a fraction of this number (an 'achieved / possible' ratio
that means something on any CPU). Run:  python benchmarks/matmul_ceiling.py [--threads 2]
Import:  from benchmarks.matmul_ceiling import matmul_ceiling; matmul_ceiling(torch.bfloat16)
"""
from __future__ import annotations

import argparse
import os
import time

import torch

SIZES = (512, 1024, 2048, 3072)
MAX_CALL_SECONDS = 5.0  # bf16 without AVX512-BF16/AMX can be ~100x slower: never hold the machine for minutes


def gflops(n: int, dtype: torch.dtype, repeats: int = 5, min_seconds: float = 0.5) -> tuple[float, float]:
    """(best-of-`repeats` GFLOP/s, seconds of one call) of an (n, n) @ (n, n) matmul (2 n^3 flops).

    When one call takes longer than MAX_CALL_SECONDS, that single call is the measurement.
    (a, b are random normals: no denormals, which some CPUs handle far slower.)
    """
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    start = time.perf_counter()
    torch.mm(a, b)  # warm-up: packing, thread pool start; also tells how slow one call is
    one = time.perf_counter() - start
    if one > MAX_CALL_SECONDS:
        return 2 * n**3 / one / 1e9, one
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
    return best, one


def _sweep(dtype: torch.dtype, sizes=SIZES) -> dict[int, float]:
    """GFLOP/s per size; sizes whose single call would take over MAX_CALL_SECONDS are skipped."""
    out: dict[int, float] = {}
    prev = None  # (n, seconds of one call)
    for n in sizes:
        if prev is not None and prev[1] * (n / prev[0]) ** 3 > MAX_CALL_SECONDS:
            break  # predicted from the previous size: n^3 flops
        out[n], one = gflops(n, dtype)
        prev = (n, one)
    return out


def matmul_ceiling(dtype: torch.dtype = torch.bfloat16, threads: int = 2, sizes=SIZES) -> float:
    """The best GFLOP/s over `sizes` with `threads` threads."""
    torch.set_num_threads(threads)
    return max(_sweep(dtype, sizes).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"matmul ceiling, torch {torch.__version__}, {args.threads} threads "
          f"(best of 5 samples of >= 0.5 s; one call when a call takes > {MAX_CALL_SECONDS:.0f} s); "
          f"load average at start {os.getloadavg()[0]:.1f}")
    results = {dt: _sweep(dt) for dt in (torch.float32, torch.bfloat16)}
    print(f"{'n':>6} {'fp32 GFLOP/s':>14} {'bf16 GFLOP/s':>14}")
    for n in SIZES:
        cells = [f"{results[dt][n]:>14.1f}" if n in results[dt] else f"{'(skipped)':>14}" for dt in results]
        print(f"{n:>6} {' '.join(cells)}")
    fp32, bf16 = (max(results[dt].values()) for dt in results)
    print(f"ceiling: fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s (bf16/fp32 = {bf16 / fp32:.3f})")


if __name__ == "__main__":
    main()
