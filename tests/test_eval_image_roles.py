"""Images are embedded in the role their task gives them: t2i galleries as documents, i2t and zero-shot images as
queries (config.ImageRole), and the eval's cache keeps the two apart; an encoder whose roles do not differ embeds
each image once."""
from __future__ import annotations

import zlib
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
        # zlib.crc32 of the file name, not hash() of the path: str hashes change per process (PYTHONHASHSEED) and
        # pytest's tmp folder per run, which made these vectors differ from run to run
        rows = [np.random.default_rng(zlib.crc32(f"{role}|{it.rsplit('/', 1)[-1]}".encode())).normal(size=8)
                for it in items]
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


class LooksEncoder(RecordingEncoder):
    """RecordingEncoder plus an appearance channel that knows every image's concept (its file name's colour word)."""

    # high enough that the looks always decide: a 1-vs-0 look gap weighs 0.9, random cosines move a score by <= 0.2
    appearance_weight = 0.9

    def __init__(self):
        super().__init__(roles_differ=True)
        self.appearance_calls: list[int] = []

    def encode_appearance(self, paths):
        self.appearance_calls.append(len(paths))
        colours = ("red", "green", "blue")
        return np.array([np.eye(3, dtype=np.float32)[next(i for i, c in enumerate(colours) if c in p.rsplit("/", 1)[-1])]
                         for p in paths])


def test_i2i_fuses_the_appearance_channel_of_an_encoder_that_has_one(tmp_path):
    """An image -> image task ranks by (1 - w) cosine + w appearance cosine, as Collection.search does for an image
    query; other tasks, and an encoder with weight 0, rank by cosine. Appearances are embedded once per image."""
    from eval_fixtures import make_color_data

    from mmembed.appearance import fuse_appearance
    from mmembed.evaluation.runner import appearance_weight, similarity

    (ds,) = find_datasets(make_color_data(tmp_path / "three", per_concept=3, concepts=("red", "green", "blue")))
    (task,) = build_tasks(["i2i"], [ds])[0]
    encoder = LooksEncoder()
    embedder = Embedder(encoder)
    fused = score_task(embedder, task)
    assert appearance_weight(encoder, task) == 0.9
    cosine = similarity(embedder, task)
    looks = encoder.encode_appearance(list(task.queries.items)) @ encoder.encode_appearance(list(task.targets.items)).T
    ranks = np.argsort(-fuse_appearance(cosine, looks, 0.9), axis=1)[:, 0]
    assert fused.metrics["R@1"] == 1.0 and ranks.tolist() == [np.argmax(r) for r in looks]  # the looks decide here
    assert encoder.appearance_calls[:2] == [len(task.queries), len(task.targets)]
    encoder.appearance_weight = 0.0
    plain = score_task(Embedder(encoder), task)
    assert plain.metrics["R@1"] < 1.0  # random vectors alone do not find the references
    (t2i, *_), _ = build_tasks(["t2i"], [ds])
    assert appearance_weight(LooksEncoder(), t2i) == 0.0
    assert appearance_weight(RecordingEncoder(), task) == 0.0  # no appearance channel
