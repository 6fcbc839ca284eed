"""Images are embedded in the role their task gives them: t2i galleries as documents, i2t and zero-shot images as
queries (config.ImageRole), and the eval's cache keeps the two apart; an encoder whose roles do not differ embeds
each image once."""
from __future__ import annotations

from collections import Counter

import numpy as np
from eval_fixtures import make_eval_data

from mmembed.evaluation.data import find_datasets
from mmembed.evaluation.runner import Embedder, score_task
from mmembed.evaluation.tasks import build_tasks


class RecordingEncoder:
    """Random unit vectors per (item, role); records every image call's role and size."""

    name = "recording"
    modalities = frozenset({"text", "image"})

    def __init__(self, roles_differ: bool = True):
        self.image_roles_differ = roles_differ
        self.image_calls: list[tuple[str, int]] = []

    def _vectors(self, items, role):
        rows = [np.random.default_rng(abs(hash((it, role))) % 2**32).normal(size=8) for it in items]
        return np.array([r / np.linalg.norm(r) for r in rows], dtype=np.float32)

    def encode_text(self, texts, role):
        return self._vectors(texts, role)

    def encode_images(self, paths, role="document"):
        self.image_calls.append((role, len(paths)))
        return self._vectors(paths, role)

    def describe(self):
        return {}


def test_galleries_are_documents_and_image_queries_are_queries_each_embedded_once(tmp_path):
    tasks, _ = build_tasks(["t2i", "i2t", "zeroshot"], find_datasets(make_eval_data(tmp_path) / "shapes"))
    encoder = RecordingEncoder()
    embedder = Embedder(encoder)
    for task in tasks:
        score_task(embedder, task)
    images = {t.kind: (t.queries if t.queries.modality == "image" else t.targets) for t in tasks}
    assert {k: side.role for k, side in images.items()} == {"t2i": "document", "i2t": "query", "zeroshot": "query"}
    calls = Counter(role for role, _ in encoder.image_calls)
    assert calls == {"document": 1, "query": 1}  # 8 shapes once per role, over every language and task
    assert sum(n for _, n in encoder.image_calls) == 2 * len(set(images["t2i"].items))
    document = embedder.embed(images["t2i"])
    query = embedder.embed(images["i2t"])
    assert not np.allclose(document[: len(query)], query)  # the cache did not hand one role the other's vectors
    assert len(encoder.image_calls) == 2


def test_an_encoder_whose_roles_do_not_differ_embeds_each_image_once(tmp_path):
    tasks, _ = build_tasks(["t2i", "i2t", "zeroshot"], find_datasets(make_eval_data(tmp_path) / "shapes"))
    encoder = RecordingEncoder(roles_differ=False)
    embedder = Embedder(encoder)
    for task in tasks:
        score_task(embedder, task)
    assert encoder.image_calls == [("document", 8)]


def test_an_mmembed_model_says_whether_its_roles_differ():
    from mmembed.config import FeatureReadoutConfig
    from mmembed.evaluation.encoders import MMEmbedEncoder
    from mmembed.feature_readout import FeatureReadout

    class Model:
        feature_readout = None

    model = Model()
    assert not MMEmbedEncoder(model).image_roles_differ
    for query_weight, differ in ((None, False), (0.25, False), (1.5, True)):
        model.feature_readout = FeatureReadout(FeatureReadoutConfig(weight=0.25, query_weight=query_weight), 4, 3)
        assert MMEmbedEncoder(model).image_roles_differ is differ
