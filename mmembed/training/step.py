"""One contrastive step: plain, or cached-gradient (GradCache, Gao et al. 2021).

GradCache lets the contrastive batch be far larger than what fits in memory: embed the batch in
chunks WITHOUT graphs, compute the loss and its gradient w.r.t. the embeddings, then re-embed
each chunk WITH a graph and backpropagate that cached gradient. Same gradients as one big batch,
memory of one chunk, ~1.3x the compute. RNG state is replayed so dropout matches between passes.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from .embedder import PairEmbedder
from .pairs import TrainPair

LossFn = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


def plain_step(embedder: PairEmbedder, pairs: Sequence[TrainPair], loss_fn: LossFn, scale: float = 1.0) -> float:
    a, p, n = embedder.pairs(pairs)
    loss = loss_fn(a, p, n)
    (loss * scale).backward()
    return float(loss.detach())


def grad_cache_step(
    embedder: PairEmbedder, pairs: Sequence[TrainPair], loss_fn: LossFn, chunk: int, scale: float = 1.0
) -> float:
    chunks = [list(pairs[s : s + chunk]) for s in range(0, len(pairs), chunk)]
    rng_states, reps = [], []
    with torch.no_grad():
        for c in chunks:
            rng_states.append(torch.get_rng_state())
            reps.append(embedder.pairs(c))
    n_counts = [0 if r[2] is None else len(r[2]) for r in reps]  # hard negatives per chunk (optional per pair)
    a = torch.cat([r[0] for r in reps]).requires_grad_()
    p = torch.cat([r[1] for r in reps]).requires_grad_()
    n = torch.cat([r[2] for r in reps if r[2] is not None]).requires_grad_() if any(n_counts) else None
    loss = loss_fn(a, p, n)
    (loss * scale).backward()  # grads land on a/p/n and directly on logit_scale / logit_bias
    start = n_start = 0
    for c, state, k in zip(chunks, rng_states, n_counts):
        sl = slice(start, start + len(c))
        start += len(c)
        torch.set_rng_state(state)
        ca, cp, cn = embedder.pairs(c)
        outs, grads = [ca, cp], [a.grad[sl], p.grad[sl]]
        if k:
            outs.append(cn)
            grads.append(n.grad[n_start : n_start + k])
            n_start += k
        live = [(o, g) for o, g in zip(outs, grads) if o.requires_grad]  # cached frozen sides have no graph
        if live:
            torch.autograd.backward([o for o, _ in live], [g for _, g in live])
    return float(loss.detach())
