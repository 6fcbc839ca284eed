"""The MTEB adapter: the encoder protocol contract, and mteb's own evaluator on its in-memory mock tasks."""
import numpy as np
import pytest
import torch

import mmembed
from mmembed.evaluation.mteb_adapter import MTEBEncoder


class Spy:
    """Wraps a model and records the instruction each encode call received."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def encode_text(self, texts, **kw):
        self.calls.append(("text", kw.get("instruction"), len(texts)))
        return self.model.encode_text(texts, **kw)

    def encode_image(self, images, **kw):
        self.calls.append(("image", kw.get("role"), len(images)))
        return self.model.encode_image(images, **kw)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mmembed.load("tiny-random")


def test_sentences_in_array_out_with_roles(model):
    spy = Spy(model)
    # short instructions: the tiny model's context is 64 bytes, prompt included
    enc = MTEBEncoder(spy, query_instruction="Find", task_instructions={"MyTask": "Task"})
    q = enc.encode(["a red apple", "ein roter Apfel"], task_name="Other", prompt_type="query")
    d = enc.encode(["a red apple"], task_name="MyTask", prompt_type="document")
    enc.encode(["a red apple"], task_name="MyTask", prompt_type="query")
    n = enc.encode(["a red apple"], task_name="Other")
    assert q.shape == (2, model.dim) and q.dtype == np.float32
    assert [c[1] for c in spy.calls] == ["Find", None, "Task", None]
    assert not np.allclose(q[0], q[1])
    assert not np.allclose(enc.encode(["a red apple"], prompt_type="query")[0], d[0])  # the instruction counts
    assert np.allclose(d[0], n[0])
    assert enc.similarity(q, d).shape == (2, 1)
    assert np.allclose(enc.similarity_pairwise(q, q), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="prompt_type must be"):
        enc.encode(["x"], prompt_type="passage")


def test_images_an_mteb_task_queries_with_are_query_images(model):
    from PIL import Image

    spy = Spy(model)
    enc = MTEBEncoder(spy)
    batch = [{"image": [Image.new("RGB", (32, 32), "red")]}]
    for prompt_type in ("query", "document", None):
        enc.encode(batch, prompt_type=prompt_type)
    assert spy.calls == [("image", "query", 1), ("image", "document", 1), ("image", "document", 1)]


def test_mteb_batches_are_accepted(model):
    enc = MTEBEncoder(model)
    batches = [{"text": ["one", "two"]}, {"text": ["three"]}]
    assert np.allclose(enc.encode(batches), enc.encode(["one", "two", "three"]), atol=1e-6)
    with pytest.raises(TypeError, match="expected 'text' or 'image'"):
        enc.encode([{"audio": [1]}])


def test_mteb_evaluator_on_mock_tasks(model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # mock tasks live in memory: nothing may be downloaded
    import mteb
    from mteb.mocks.mock_tasks.bitext_mining import MockBitextMiningTask
    from mteb.mocks.mock_tasks.retrieval import MockRetrievalTask
    from mteb.models.models_protocols import EncoderProtocol

    enc = MTEBEncoder(model, query_instruction="Retrieve the passage")
    assert isinstance(enc, EncoderProtocol)
    assert enc.mteb_model_meta.embed_dim == model.dim
    res = mteb.evaluate(enc, [MockBitextMiningTask(), MockRetrievalTask()], cache=None, show_progress_bar=False)
    assert not res.exceptions
    scores = {r.task_name: r.get_score() for r in res.task_results}
    assert set(scores) == {"MockBitextMiningTask", "MockRetrievalTask"}
    assert all(0.0 <= s <= 1.0 for s in scores.values())
