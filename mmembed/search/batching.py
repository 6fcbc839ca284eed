"""Dynamic batching: concurrent requests merged into one model call.

Each request puts a job (its inputs + a future) on an asyncio queue. One worker takes the first
job, then keeps collecting while jobs keep coming: it stops at `max_batch` inputs, after a gap of
`max_wait_ms` with no new job, or `max_delay_ms` after the first job. (A fixed deadline from the
first job splits a wave of clients in two: after a batch is answered, their next requests trickle
in over tens of ms on a busy CPU, and the first few would go alone.) It runs ONE
model call for all of them on a single model thread (torch already uses every core inside one
call; two calls at once would only fight over them) and hands each job its rows. With
`enabled=False` the same worker runs one job per model call: the baseline of bench_server.py.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np


@dataclass(frozen=True)
class Encoded:
    vectors: np.ndarray  # (n, dim) float32, L2-normalized
    tokens: list[int]  # tokens per input (for the OpenAI `usage` field)
    looks: Optional[list[Optional[np.ndarray]]] = None  # per input its (C,) appearance when asked for, else None

    def rows(self, start: int, stop: int) -> "Encoded":
        return Encoded(self.vectors[start:stop], self.tokens[start:stop],
                       None if self.looks is None else self.looks[start:stop])


@dataclass
class _Job:
    items: list[Any]  # str (text) or PIL.Image (image), already validated
    future: asyncio.Future


@dataclass
class BatchStats:
    requests: int = 0
    items: int = 0
    model_calls: int = 0
    model_seconds: float = 0.0
    largest_batch: int = 0

    def summary(self) -> dict[str, float]:
        return {"requests": self.requests, "items": self.items, "model_calls": self.model_calls,
                "mean_batch": round(self.items / self.model_calls, 2) if self.model_calls else 0.0,
                "largest_batch": self.largest_batch, "model_seconds": round(self.model_seconds, 3)}


@dataclass
class DynamicBatcher:
    encode: Callable[[list[Any]], Encoded]  # blocking; runs on the model thread
    enabled: bool = True
    max_batch: int = 64  # inputs per model call
    max_wait_ms: float = 5.0  # gap with no new request that closes a batch
    max_delay_ms: float = 50.0  # the longest the first request of a batch waits for company
    stats: BatchStats = field(default_factory=BatchStats)

    def __post_init__(self) -> None:
        self._queue: Optional[asyncio.Queue] = None
        self._worker: Optional[asyncio.Task] = None
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmembed-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name="mmembed-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._thread.shutdown(wait=True)

    async def embed(self, items: list[Any]) -> Encoded:
        if self._queue is None:
            raise RuntimeError("DynamicBatcher.start() was not awaited")
        job = _Job(list(items), asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        jobs = [await self._queue.get()]
        if not self.enabled:
            return jobs
        size = len(jobs[0].items)
        close_by = time.monotonic() + self.max_delay_ms / 1000.0
        while size < self.max_batch:
            try:  # everything already queued joins at once; then wait a little for more
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = min(self.max_wait_ms / 1000.0, close_by - time.monotonic())
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), left)
                except asyncio.TimeoutError:
                    break
            jobs.append(job)
            size += len(job.items)
        return jobs

    async def _call(self, items: list[Any]) -> Encoded:
        t0 = time.perf_counter()
        out = await asyncio.get_running_loop().run_in_executor(self._thread, self.encode, items)
        self.stats.model_calls += 1
        self.stats.model_seconds += time.perf_counter() - t0
        self.stats.largest_batch = max(self.stats.largest_batch, len(items))
        return out

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            self.stats.requests += len(jobs)
            items = [x for j in jobs for x in j.items]
            self.stats.items += len(items)
            try:
                out = await self._call(items)
            except Exception as err:  # noqa: BLE001 - handed to the request handlers
                if len(jobs) == 1:
                    _fail(jobs[0], err)
                else:  # one bad job must not fail its neighbours: run each alone
                    for job in jobs:
                        await self._run_alone(job)
                continue
            start = 0
            for job in jobs:
                n = len(job.items)
                if not job.future.done():
                    job.future.set_result(out.rows(start, start + n))
                start += n

    async def _run_alone(self, job: _Job) -> None:
        try:
            out = await self._call(job.items)
        except Exception as err:  # noqa: BLE001
            _fail(job, err)
            return
        if not job.future.done():
            job.future.set_result(out)


def _fail(job: _Job, err: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(err)
