"""Search speed of a Collection: exact scan vs ANN index, and images indexed per second.

    flock /tmp/mmembed-heavy.lock nice .venv/bin/python benchmarks/bench_search.py --sizes 100000 1000000

Stored vectors: 640-d, random but clustered (Gaussian blobs around 1,000 random centres, like
real embeddings, which are far from uniform), L2-normalized. Queries are fresh draws from the
same blobs. Recall@10 of the ANN search is measured against the exact top-10 (numpy brute force).
End to end: real clip-art PNGs (Debian openclipart-png) through discovery, hashing, decoding,
the image tower + backbone, and the Lance commit, with a multimodal model of the shipped
architecture (its projector's training does not change the speed); indexed twice, without and with the appearance
column (mmembed/appearance.py), then image queries timed by cosine alone and fused with their look:

    flock /tmp/mmembed-heavy.lock nice .venv/bin/python benchmarks/bench_search.py --sizes --images 256
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmembed.search.ann import AnnParams
from mmembed.search.collection import Collection
from mmembed.search.documents import Document

DIM = 640
CLIPART = Path("/usr/share/openclipart/png")


@dataclass
class _Cfg:
    version: str = "0"


class VectorsOnly:
    """Stands in for a model: the benchmark stores ready-made vectors (nothing is embedded)."""

    name = "bench-random-640"
    config = _Cfg()
    dim = DIM


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator, spread: float = 0.6) -> np.ndarray:
    """(n, dim) unit vectors around unit-norm centres: noise of norm ~`spread` puts a point at cosine
    ~0.85 to its centre and ~0.7 to its cluster mates, about what real neighbours look like."""
    which = rng.integers(0, len(centres), n)
    x = centres[which] + spread * rng.standard_normal((n, centres.shape[1]), dtype=np.float32) / np.sqrt(centres.shape[1])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def pct(times: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times) * 1000.0, q))


def exact_top(stored: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    out = []
    for s in range(0, len(queries), 64):
        scores = queries[s : s + 64] @ stored.T  # (q, n)
        out.append(np.argsort(-scores, axis=1)[:, :k])
    return np.concatenate(out)


def timed_search(col: Collection, queries: np.ndarray, k: int, exact: bool) -> tuple[list[float], list[list[int]]]:
    times, ids = [], []
    col.search_vector(queries[0], k, exact=exact)  # warm the caches once
    for q in queries:
        t = time.perf_counter()
        hits = col.search_vector(q, k, exact=exact)
        times.append(time.perf_counter() - t)
        ids.append([int(h.document.id) for h in hits])
    return times, ids


def bench_size(n: int, args, rng: np.random.Generator, root: Path) -> None:
    centres = rng.standard_normal((1000, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    path = root / f"bench-{n}.lance"
    col = Collection(path, model=VectorsOnly())
    stored = np.empty((n, DIM), dtype=np.float32)
    t0 = time.perf_counter()
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        stored[s : s + m] = clustered(m, centres, rng)
        docs = [Document(id=str(i), kind="text", text=f"row {i}", language="en") for i in range(s, s + m)]
        col.append(docs, stored[s : s + m])
    load_s = time.perf_counter() - t0
    queries = clustered(args.queries, centres, rng)
    truth = exact_top(stored, queries, args.k)

    ex_times, ex_ids = timed_search(col, queries[: args.exact_queries], args.k, exact=True)
    ex_recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ex_ids, truth)])
    print(f"n={n:>9,}  load {load_s:6.1f} s   exact (flat scan, {len(ex_times)} queries): "
          f"p50 {pct(ex_times, 50):8.1f} ms  p99 {pct(ex_times, 99):8.1f} ms  recall@{args.k} {ex_recall:.3f}")

    for index_type in args.index_types:
        for rows in args.partition_rows:  # 0: the collection's default partition size
            parts = None if rows == 0 else max(1, n // rows)
            t0 = time.perf_counter()
            col.create_index(AnnParams(index_type=index_type, num_partitions=parts))
            label = f"{index_type} ({'default' if parts is None else parts} partitions)"
            print(f"              {label} index built in {time.perf_counter() - t0:.1f} s")
            for nprobes, refine in args.settings:
                col.ann = AnnParams(index_type=index_type, num_partitions=parts, nprobes=nprobes, refine_factor=refine)
                times, ids = timed_search(col, queries, args.k, exact=False)
                recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, truth)])
                print(f"              {label} nprobes={nprobes:<3} refine={refine:<3} ({len(times)} queries): "
                      f"p50 {pct(times, 50):7.1f} ms  p99 {pct(times, 99):7.1f} ms  recall@{args.k} {recall:.3f}")
    shutil.rmtree(path, ignore_errors=True)


def bench_images(args, root: Path) -> None:
    import mmembed

    files = sorted(CLIPART.rglob("*.png"))[: args.images]
    if not files:
        print(f"images: no PNGs under {CLIPART} (apt-get install openclipart-png); skipped")
        return
    model = mmembed.load(args.model)
    if not model.config.image_trained:
        model.config.image_trained = True  # untrained projector: same compute, meaningless vectors
    model.encode_image(files[:8])  # warm-up: thread pools and first-call costs go to neither run
    model.encode_appearance(files[:8])
    seconds = {}
    for keep in (False, True):  # the same files, without and with the appearance column (alternating order once)
        col = Collection(root / f"images-{keep}.lance", model=model, appearance=keep)
        report = col.index_paths(files, progress=False)
        seconds[keep] = report.seconds
        print(f"images: {report.inserted} clip-art PNGs indexed end to end in {report.seconds:.1f} s = "
              f"{report.inserted / report.seconds:.1f} images/s (model {model.name}, {len(report.skipped)} skipped, "
              f"appearance {'kept' if keep else 'off'})")
    print(f"images: keeping the appearance costs {seconds[True] / seconds[False]:.2f}x the indexing time")
    queries = files[: args.image_queries]
    for weight in (0.0, None):  # an image query by cosine alone, and fused with the look (the default)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            col.search(q, k=args.k, appearance_weight=weight)
            times.append(time.perf_counter() - t0)
        label = "cosine only" if weight == 0 else "fused with its look"
        print(f"image query ({label}, {len(times)} queries, {len(files)} images): p50 {pct(times, 50):.1f} ms  "
              f"p99 {pct(times, 99):.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200, help="ANN queries per setting")
    ap.add_argument("--exact-queries", type=int, default=20, help="exact (flat scan) queries")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--index-types", type=lambda s: s.split(","), default=["IVF_SQ", "IVF_PQ"],
                    help="comma-separated: IVF_SQ, IVF_PQ, IVF_HNSW_SQ, ...")
    ap.add_argument("--settings", type=lambda s: [tuple(map(int, p.split(":"))) for p in s.split(",")],
                    default=[(4, 1), (8, 5), (16, 10)], help="nprobes:refine pairs, e.g. 8:5,16:10")
    ap.add_argument("--partition-rows", type=int, nargs="*", default=[0],
                    help="rows per IVF partition to try (0: the collection default, PARTITION_ROWS)")
    ap.add_argument("--images", type=int, default=256, help="clip-art PNGs for images/s (0: skip)")
    ap.add_argument("--model", default="gemma3-270m-mm-untrained", help="model for images/s")
    ap.add_argument("--image-queries", type=int, default=30, help="image queries timed on the indexed PNGs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    root = Path(tempfile.mkdtemp(prefix="mmembed-bench-"))
    try:
        for n in args.sizes:
            bench_size(n, args, rng, root)
        if args.images:
            bench_images(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
