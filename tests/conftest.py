"""Shared fixtures: tiny random-weight models (fast) and the real packaged model (integration)."""
from __future__ import annotations

import socket

import pytest

import mmembed

TINY_MODELS = ["tiny-random", "tiny-random-llama"]


@pytest.fixture(scope="session", params=TINY_MODELS)
def tiny_model(request):
    return mmembed.load(request.param)


@pytest.fixture(scope="session")
def tiny():
    return mmembed.load("tiny-random")


@pytest.fixture(scope="session")
def real_model():
    return mmembed.load("gemma3-270m-prompteol")


@pytest.fixture
def free_port() -> int:
    """A free localhost port for a 2-rank gloo test's MASTER_PORT."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record_what_this_rank_raises(rank: int, world: int, port: int, result: str, work) -> None:
    """Inside a spawned process: join a `world`-rank gloo group as `rank`, as torchrun would, call `work()`,
    and write what it raised (or 'nothing') to `result.RANK`, for tests of failures under torchrun."""
    import datetime
    import gc
    import os

    import torch

    from mmembed.training.trainer import shutdown_distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    # a short timeout: a rank left waiting at a collective fails the test within a minute, not half an hour
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        work()
        raised = "nothing"
    except Exception as err:
        raised = f"{type(err).__name__}: {err}"
    with open(f"{result}.{rank}", "w") as f:
        f.write(raised)
    gc.collect()  # drop autograd graphs (they hold gloo work objects) before the group goes away
    shutdown_distributed()
