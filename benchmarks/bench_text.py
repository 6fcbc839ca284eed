"""Text throughput: mmembed vs sentence-transformers on the SAME Gemma backbone, workload, batch size.

Workload: real multilingual UI sentences (Django's translation catalogs: English source + human
translations), PromptEOL-wrapped, last-token pooling, measured in ONE process so ratios hold.
Prints texts/s, tokens/s, padded tokens, the achieved fraction of the machine's matmul ceiling,
agreement with mmembed fp32 (mean cosine) and bitext R@1 (translation -> English) per mode.

    python benchmarks/bench_text.py [--pairs 844] [--batch-size 32] [--modes ...]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
ALL_MODES = ("mmembed-fp32", "mmembed-bf16", "int8-dynamic", "st-fp32", "st-bf16")


@dataclass
class Row:
    mode: str
    seconds: float
    real_tokens: int
    padded_tokens: int
    emb: np.ndarray


def workload(pairs: int, seed: int = 0) -> tuple[list[str], list[str], list[int]]:
    """-> (english, translations, english index of each translation): `pairs` translations of
    >= 4 words in many languages; an English sentence may have several (Django has 192 distinct
    English sentences of >= 4 words, so 1,024 texts need repeats on the English side)."""
    from mmembed.data.builders.django_po import read_pairs
    from mmembed.data.builders.sources import DJANGO

    seen, out = set(), []
    for p in read_pairs(DJANGO.require(), None, Counter()):
        if len(p.translation.split()) >= 4 and p.translation != p.english and p.translation not in seen:
            seen.add(p.translation)
            out.append(p)
    out.sort(key=lambda p: (p.lang, p.english, p.translation))
    random.Random(seed).shuffle(out)
    out = out[:pairs]
    english = sorted({p.english for p in out})
    index = {e: i for i, e in enumerate(english)}
    return english, [p.translation for p in out], [index[p.english] for p in out]


def _padded(lengths: list[int], batch_size: int) -> int:
    """Tokens processed when sorted batches are padded to their longest member."""
    s = sorted(lengths, reverse=True)
    return sum(max(s[i : i + batch_size]) * len(s[i : i + batch_size]) for i in range(0, len(s), batch_size))


def run_mmembed(texts, batch_size, dtype: str) -> Row:
    import mmembed

    cfg = mmembed.get_config("gemma3-270m-prompteol")
    cfg.backbone.dtype = dtype
    from mmembed.model import MMEmbedModel

    model = MMEmbedModel(cfg)
    lengths = [len(p) for p in model.text.text_plans(texts)]
    model.encode_text(texts[:batch_size], batch_size=batch_size)  # warm-up
    t = time.perf_counter()
    emb = model.encode_text(texts, batch_size=batch_size)
    name = {"float32": "mmembed-fp32", "bfloat16": "mmembed-bf16"}[dtype]
    return Row(name, time.perf_counter() - t, sum(lengths), _padded(lengths, batch_size), emb)


def run_int8(texts, batch_size) -> Row:
    """Naive dynamic int8 on every Linear (measured to show why mmembed does not ship it)."""
    import mmembed
    from mmembed.model import MMEmbedModel

    cfg = mmembed.get_config("gemma3-270m-prompteol")
    cfg.backbone.dtype = "float32"
    model = MMEmbedModel(cfg)
    model.backbone = torch.ao.quantization.quantize_dynamic(model.backbone, {torch.nn.Linear}, dtype=torch.qint8)
    lengths = [len(p) for p in model.text.text_plans(texts)]
    model.encode_text(texts[:batch_size], batch_size=batch_size)
    t = time.perf_counter()
    emb = model.encode_text(texts, batch_size=batch_size)
    return Row("int8-dynamic", time.perf_counter() - t, sum(lengths), _padded(lengths, batch_size), emb)


def run_st(texts, batch_size, dtype: torch.dtype) -> Row:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from mmembed.assets import packaged_backbone_dir
    from mmembed.config import PromptConfig

    folder = str(packaged_backbone_dir("gemma3-270m"))
    word = Transformer(folder, model_kwargs={"dtype": dtype})
    pool = Pooling(word.get_embedding_dimension(), pooling_mode="lasttoken")
    st = SentenceTransformer(modules=[word, pool], device="cpu")
    p = PromptConfig()
    prompted = [f"{p.text_prefix}{t}{p.text_suffix}" for t in texts]  # the same prompt mmembed builds
    lengths = [len(x) for x in st.tokenizer(prompted)["input_ids"]]
    # sentence-transformers sorts by characters, not tokens: count the padding it really processes
    order = np.argsort([-len(x) for x in prompted])
    padded = sum(max(lengths[j] for j in order[i : i + batch_size]) * len(order[i : i + batch_size])
                 for i in range(0, len(order), batch_size))
    st.encode(prompted[:batch_size], batch_size=batch_size)
    t = time.perf_counter()
    emb = st.encode(prompted, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    name = "st-bf16" if dtype == torch.bfloat16 else "st-fp32"
    return Row(name, time.perf_counter() - t, sum(lengths), padded, emb.astype(np.float32))


def bitext_r1(emb: np.ndarray, n_english: int, target: list[int]) -> float:
    """translation -> English R@1 (the English sentences are the first n_english rows)."""
    eng, trans = emb[:n_english], emb[n_english:]
    return float(np.mean((trans @ eng.T).argmax(1) == np.asarray(target)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=844, help="translations (texts = these + their distinct English sources)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--modes", default=",".join(ALL_MODES))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    eng, trans, target = workload(args.pairs)
    texts = eng + trans
    print(f"workload: {len(texts)} texts ({len(eng)} English Django sentences + {len(trans)} translations of them), "
          f"batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}")
    from matmul_ceiling import matmul_ceiling

    ceiling = {"fp32": matmul_ceiling(torch.float32, args.threads, sizes=(1024, 2048)),
               "bf16": matmul_ceiling(torch.bfloat16, args.threads, sizes=(512, 1024))}
    print(f"matmul ceiling: fp32 {ceiling['fp32']:.1f} GFLOP/s, bf16 {ceiling['bf16']:.1f} GFLOP/s")
    rows = []
    for mode in modes:
        if mode == "mmembed-fp32":
            rows.append(run_mmembed(texts, args.batch_size, "float32"))
        elif mode == "mmembed-bf16":
            rows.append(run_mmembed(texts, args.batch_size, "bfloat16"))
        elif mode == "int8-dynamic":
            rows.append(run_int8(texts, args.batch_size))
        elif mode == "st-fp32":
            rows.append(run_st(texts, args.batch_size, torch.float32))
        elif mode == "st-bf16":
            rows.append(run_st(texts, args.batch_size, torch.bfloat16))
        else:
            raise SystemExit(f"unknown mode {mode!r}; known: {', '.join(ALL_MODES)}")
        r = rows[-1]
        print(f"  {r.mode}: {r.seconds:.1f} s", flush=True)
    ref = next((r for r in rows if r.mode == "mmembed-fp32"), rows[0])
    non_embedding = 98e6  # Gemma 3 270M without its 170M embedding table
    print(f"\n{'mode':14} {'sec':>7} {'texts/s':>8} {'tok/s':>7} {'padded':>7} {'GFLOP/s':>8} {'ceil%':>6} {'cos':>7} {'R@1':>6}")
    for r in rows:
        gf = 2 * non_embedding * r.padded_tokens / r.seconds / 1e9
        ceil = ceiling["bf16" if "bf16" in r.mode else "fp32"]
        cos = float(np.mean(np.sum(r.emb * ref.emb, axis=1)))
        print(f"{r.mode:14} {r.seconds:7.1f} {len(texts) / r.seconds:8.1f} {r.real_tokens / r.seconds:7.0f} "
              f"{r.padded_tokens:7d} {gf:8.1f} {100 * gf / ceil:5.0f}% {cos:7.4f} {100 * bitext_r1(r.emb, len(eng), target):6.1f}")
    best = min((r for r in rows if r.mode.startswith("mmembed")), key=lambda r: r.seconds, default=None)
    for other in ("st-bf16", "st-fp32"):
        o = next((r for r in rows if r.mode == other), None)
        if best and o:
            print(f"speed-up {best.mode} vs {other}: {o.seconds / best.seconds:.2f}x")


if __name__ == "__main__":
    main()
