"""Zero-shot labelling (mmembed/classify.py): labels ranked per image, images embedded as queries."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from search_fixtures import roles_model

from mmembed.classify import LabelScore
from mmembed.encoding import EncodeInputError

LABELS = ["Katze", "Hund", "Auto", "ein roter Apfel"]


@pytest.fixture(scope="module")
def model():
    return roles_model()


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)) for _ in range(3)]


def test_labels_are_ranked_per_image_by_cosine_with_the_query_image(model, images):
    got = model.classify(images, LABELS, top_k=3)
    scores = model.encode_image(images, role="query") @ model.encode_text(LABELS).T  # (3, 4)
    assert len(got) == 3 and all(len(row) == 3 and all(isinstance(x, LabelScore) for x in row) for row in got)
    for row, expected in zip(got, scores):
        order = np.argsort(-expected, kind="stable")[:3]
        assert [x.label for x in row] == [LABELS[j] for j in order]
        np.testing.assert_allclose([x.score for x in row], expected[order], atol=1e-5)
    documents = model.encode_image(images) @ model.encode_text(LABELS).T
    assert not np.allclose(documents, scores, atol=1e-3)  # the query role, not the document one
    assert [row[0] for row in model.classify(images, LABELS)] == [row[0] for row in got]  # top_k=1: the best


def test_a_template_wraps_each_label_and_results_keep_the_bare_label(model, images):
    got = model.classify(images[:1], LABELS, top_k=4, template="ein Foto von {}")
    expected = model.encode_image(images[:1], role="query") @ model.encode_text([f"ein Foto von {x}" for x in LABELS]).T
    assert {x.label for x in got[0]} == set(LABELS)
    np.testing.assert_allclose(sorted((x.score for x in got[0]), reverse=True), np.sort(expected[0])[::-1], atol=1e-5)


def test_no_images_no_rows(model):
    assert model.classify([], LABELS) == []


@pytest.mark.parametrize("labels, kwargs, message", [
    ([], {}, "labels is empty"),
    ("Katze", {}, "labels must be a list of strings"),
    (["Katze", "  "], {}, "label #1 is empty or blank"),
    (["Katze", "Hund", "Katze"], {}, "label #2 'Katze' repeats label #0"),
    (["Katze", 3], {}, "label #1 is int"),
    (LABELS, {"top_k": 5}, r"top_k must be an int in 1..4"),
    (LABELS, {"top_k": 0}, r"top_k must be an int in 1..4"),
    (LABELS, {"template": "a photo"}, "template must be a str with one '{}'"),
])
def test_bad_labels_and_options_are_named(model, images, labels, kwargs, message):
    with pytest.raises(EncodeInputError, match=message):
        model.classify(images, labels, **kwargs)
