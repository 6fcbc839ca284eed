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
