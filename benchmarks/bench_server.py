"""Server throughput with and without dynamic batching, 16 concurrent clients on loopback.

    flock /tmp/mmembed-heavy.lock nice .venv/bin/python benchmarks/bench_server.py

For each mode the server runs in its own process (`mmembed serve` in-process API, 127.0.0.1, a
free port); 16 asyncio clients each send a fixed number of one-sentence /v1/embeddings requests
back to back. Prints requests/s and p50/p99 latency; the run is bounded (fixed request count,
timeouts) and the server is stopped afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

import numpy as np

SENTENCES = [
    "The cat sleeps on the warm windowsill.", "Der Zug nach Berlin hat zehn Minuten Verspätung.",
    "Le marché ouvre tôt le samedi matin.", "¿Dónde está la estación de autobuses?",
    "我们明天早上去公园散步。", "駅の近くに新しいパン屋ができました。", "الطقس جميل اليوم في المدينة.",
    "मुझे सुबह चाय पीना पसंद है।", "Watoto wanacheza mpira uwanjani.", "Мы купили свежий хлеб в пекарне.",
]

SERVER = """
import sys
from mmembed.search.server import serve
from mmembed.search.server_inputs import ServerSettings
model, port, batching = sys.argv[1] or None, int(sys.argv[2]), sys.argv[3] == "on"
serve(model, None, "127.0.0.1", port, ServerSettings(batching=batching))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}")
            try:
                return (await http.get(url + "/health", timeout=2)).json()
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
    raise TimeoutError(f"server at {url} not ready after {timeout} s")


async def load(url: str, clients: int, per_client: int) -> tuple[float, list[float]]:
    import httpx

    latencies: list[float] = []

    async def client(c: int, http) -> None:
        for i in range(per_client):
            text = f"{SENTENCES[(c + i) % len(SENTENCES)]} ({c}.{i})"
            t0 = time.perf_counter()
            r = await http.post(url + "/v1/embeddings", json={"input": text, "model": "mmembed"}, timeout=120)
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(limits=limits) as http:
        for i in range(4):  # warm-up: first calls pay for lazy initialisation
            (await http.post(url + "/v1/embeddings", json={"input": SENTENCES[i]}, timeout=120)).raise_for_status()
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        return time.perf_counter() - t0, latencies


def run_mode(model: str, batching: bool, clients: int, per_client: int) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, model or "", str(port), "on" if batching else "off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = asyncio.run(wait_ready(url, proc))
        wall, lat = asyncio.run(load(url, clients, per_client))
        batches = asyncio.run(wait_ready(url, proc))["batches"]  # /health after the run: batch sizes
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ms = np.percentile(np.array(lat) * 1000, [50, 99])
    rps = len(lat) / wall
    print(f"batching {'on ' if batching else 'off'} model {health['model']}: {len(lat)} requests from {clients} clients "
          f"in {wall:.1f} s = {rps:.1f} req/s, p50 {ms[0]:.0f} ms, p99 {ms[1]:.0f} ms; "
          f"{batches['model_calls']} model calls, mean batch {batches['mean_batch']}, largest {batches['largest_batch']}")
    return rps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="model name (default: the default model)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=16, help="requests per client")
    args = ap.parse_args()
    off = run_mode(args.model, False, args.clients, args.requests)
    on = run_mode(args.model, True, args.clients, args.requests)
    print(f"dynamic batching: {on / off:.2f}x the requests/s at {args.clients} concurrent clients")


if __name__ == "__main__":
    main()
