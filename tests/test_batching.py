"""DynamicBatcher on its own (no server, no model): how arriving requests are grouped."""
from __future__ import annotations

import asyncio

import numpy as np

from mmembed.search.batching import DynamicBatcher, Encoded


def fake_encode(items: list) -> Encoded:
    # row i of the output is [value of item i]: each job can check it got its own rows back
    return Encoded(np.array([[float(x)] for x in items], dtype=np.float32), [1] * len(items))


async def _arrivals(batcher: DynamicBatcher, gaps_ms: list[float]) -> list[Encoded]:
    await batcher.start()
    try:
        tasks = []
        for i, gap in enumerate(gaps_ms):
            await asyncio.sleep(gap / 1000)
            tasks.append(asyncio.create_task(batcher.embed([i])))
        return await asyncio.gather(*tasks)
    finally:
        await batcher.stop()


def test_a_trickling_wave_is_one_batch_and_rows_go_back_to_their_jobs():
    # 12 requests 2 ms apart (22 ms in all): a fixed 5 ms deadline from the first would split them
    batcher = DynamicBatcher(fake_encode, max_wait_ms=40, max_delay_ms=1000)  # wide margins: CI may be busy
    out = asyncio.run(_arrivals(batcher, [0] + [2] * 11))
    assert [float(o.vectors[0, 0]) for o in out] == list(range(12))
    assert batcher.stats.model_calls <= 2 and batcher.stats.largest_batch >= 11, batcher.stats


def test_a_gap_closes_the_batch_and_max_delay_caps_the_wait():
    batcher = DynamicBatcher(fake_encode, max_wait_ms=40, max_delay_ms=1000)
    asyncio.run(_arrivals(batcher, [0, 1, 1, 300, 1, 1]))  # two groups 300 ms apart
    assert batcher.stats.model_calls == 2 and batcher.stats.largest_batch == 3
    capped = DynamicBatcher(fake_encode, max_wait_ms=100, max_delay_ms=15)
    asyncio.run(_arrivals(capped, [0] + [10] * 5))  # always a new request within the gap
    assert capped.stats.model_calls >= 2  # ...but none waits past max_delay_ms


def test_batching_off_runs_one_job_per_call_and_summary_counts():
    batcher = DynamicBatcher(fake_encode, enabled=False)
    asyncio.run(_arrivals(batcher, [0, 0, 0]))
    s = batcher.stats.summary()
    assert s["model_calls"] == 3 and s["requests"] == 3 and s["mean_batch"] == 1.0
