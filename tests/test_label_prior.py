"""The label prior: image embeddings pulled toward the model's own embeddings of the tower's top labels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mmembed
from mmembed.config import LabelPriorConfig
from mmembed.label_prior import IMAGENET_CLASSES, LabelPrior, imagenet_class_names, refresh_label_embeddings
from mmembed.model import MMEmbedModel
from mmembed.serialization import trained_state_dict

IMAGES = [Image.new("RGB", (40, 30), (230, 10, 10)), Image.new("RGB", (20, 20), (10, 10, 230)),
          Image.new("RGB", (32, 32), (10, 200, 10))]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


@pytest.fixture(scope="module")
def prior_model() -> MMEmbedModel:
    cfg = mmembed.get_config("tiny-random")
    cfg.label_prior = LabelPriorConfig(weight=0.75, top_k=5)
    model = MMEmbedModel(cfg)
    with torch.no_grad():  # a random classifier is unsure of everything (a near-zero prior): make it sure
        model.image_tower.get_classifier().weight.mul_(200.0)
    return model


def test_prior_is_the_probability_weighted_sum_of_label_embeddings():
    prior = LabelPrior(LabelPriorConfig(weight=0.5, top_k=2), num_classes=4, dim=3)
    labels = _unit(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]))
    prior.label_embeddings.copy_(labels)
    probs = torch.tensor([[0.6, 0.3, 0.06, 0.04]])
    image = _unit(torch.tensor([[0.0, 0.2, 1.0]]))
    out = prior(image, probs.log())  # softmax(log p) = p
    expected = _unit(image + 0.5 * (0.6 * labels[0] + 0.3 * labels[1]))  # only the top 2, not renormalized
    torch.testing.assert_close(out, expected)


def test_classifier_confidence_gates_the_prior():
    prior = LabelPrior(LabelPriorConfig(weight=0.75, top_k=5), num_classes=IMAGENET_CLASSES, dim=8)
    prior.label_embeddings.copy_(_unit(torch.randn(IMAGENET_CLASSES, 8, generator=torch.Generator().manual_seed(0))))
    image = _unit(torch.randn(1, 8, generator=torch.Generator().manual_seed(1)))
    unsure = prior(image, torch.zeros(1, IMAGENET_CLASSES))  # uniform: top-5 mass 0.005
    sure = torch.full((1, IMAGENET_CLASSES), -20.0)
    sure[0, 7] = 20.0  # all mass on class 7
    confident = prior(image, sure)
    assert float(unsure @ image.T) > 0.999
    torch.testing.assert_close(confident, _unit(image + 0.75 * prior.label_embeddings[7]))


def test_zero_label_embeddings_change_nothing_until_refreshed(prior_model):
    assert prior_model.label_prior is not None and not prior_model.label_prior.label_embeddings.any()
    with_zero_prior = prior_model.encode_image(IMAGES)
    module, prior_model.label_prior = prior_model.label_prior, None
    try:
        plain = prior_model.encode_image(IMAGES)
    finally:
        prior_model.label_prior = module
    np.testing.assert_allclose(with_zero_prior, plain, atol=1e-6)


def test_refresh_embeds_the_class_names_and_encode_image_applies_them(prior_model):
    module, prior_model.label_prior = prior_model.label_prior, None
    try:
        plain = torch.from_numpy(prior_model.encode_image(IMAGES))
        fused_plain = prior_model.encode([(IMAGES[0], "a red square")])
    finally:
        prior_model.label_prior = module
    refresh_label_embeddings(prior_model)
    names = imagenet_class_names()
    assert len(names) == IMAGENET_CLASSES and names[281].startswith("tabby")
    some = [0, 281, 999]
    np.testing.assert_allclose(module.label_embeddings[some].numpy(), prior_model.encode_text([names[i] for i in some]), atol=1e-5)

    got = prior_model.encode_image(IMAGES)
    with torch.inference_mode():  # the formula by hand, from the tower's own classifier
        logits = prior_model.image_tower(prior_model.pixels(IMAGES))
    top = logits.softmax(-1).topk(5, -1)
    expected = _unit(plain + 0.75 * (top.values.unsqueeze(-1) * module.label_embeddings[top.indices]).sum(1))
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    top1 = module.label_embeddings[top.indices[:, 0]].numpy()  # (n, D) each image's best label
    moved = np.einsum("nd,nd->n", got, top1) - np.einsum("nd,nd->n", plain.numpy(), top1)
    assert (moved > 0).all(), moved  # every image moved toward its label
    # every image path applies it the same way, in any batch size and order; (image, text) pairs do not get it
    np.testing.assert_allclose(prior_model.encode_image(IMAGES, batch_size=1), got, atol=1e-5)
    mixed = prior_model.encode(["a red square", IMAGES[2], (IMAGES[0], "a red square"), IMAGES[0]], batch_size=2)
    np.testing.assert_allclose(mixed[1], got[2], atol=1e-5)
    np.testing.assert_allclose(mixed[3], got[0], atol=1e-5)
    np.testing.assert_allclose(mixed[2], fused_plain[0], atol=1e-5)
    np.testing.assert_allclose(mixed[0], prior_model.encode_text(["a red square"])[0], atol=1e-5)


def test_label_embeddings_are_saved_and_loaded(tmp_path):
    cfg = mmembed.get_config("tiny-random")
    cfg.label_prior = LabelPriorConfig(weight=0.75, top_k=5)
    model = MMEmbedModel(cfg)  # its own model: the fixture's sharpened classifier is base weights, never saved
    refresh_label_embeddings(model)
    assert "label_prior.label_embeddings" in trained_state_dict(model)
    model.save(tmp_path / "saved")
    loaded = mmembed.load(str(tmp_path / "saved"))
    assert loaded.config.label_prior == LabelPriorConfig(weight=0.75, top_k=5)
    torch.testing.assert_close(loaded.label_prior.label_embeddings, model.label_prior.label_embeddings)
    np.testing.assert_array_equal(loaded.encode_image(IMAGES), model.encode_image(IMAGES))
    # switched off (as the model card says: `model.label_prior = None`), it saves and loads as off
    loaded.label_prior = None
    loaded.save(tmp_path / "off")
    off = mmembed.load(str(tmp_path / "off"))
    assert off.config.label_prior is None and off.label_prior is None
    np.testing.assert_array_equal(off.encode_image(IMAGES), loaded.encode_image(IMAGES))


def test_a_model_without_a_classifier_cannot_have_a_label_prior():
    cfg = mmembed.get_config("tiny-random")
    cfg.label_prior = LabelPriorConfig()
    cfg.image_tower.timm_kwargs = {"num_classes": 0}
    with pytest.raises(ValueError, match="label_prior needs an image tower with its ImageNet-1k classifier.*has 0"):
        MMEmbedModel(cfg)
    cfg.image_tower = None
    with pytest.raises(ValueError, match="has no tower"):
        MMEmbedModel(cfg)


@pytest.mark.parametrize("bad, match", [(dict(top_k=0), "top_k must be in 1..1000"), (dict(weight=-1.0), "weight must be >= 0")])
def test_bad_label_prior_settings_are_named(bad, match):
    cfg = mmembed.get_config("tiny-random")
    cfg.label_prior = LabelPriorConfig(**bad)
    with pytest.raises(ValueError, match=match):
        MMEmbedModel(cfg)
