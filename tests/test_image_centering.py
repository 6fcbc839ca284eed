"""Image centering: image embeddings lose part of their mean over training images (mmembed.image_centering)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import mmembed
from mmembed.config import ImageCenteringConfig
from mmembed.image_centering import ImageCentering, fit_image_centering
from mmembed.model import MMEmbedModel
from mmembed.serialization import trained_state_dict

IMAGES = [Image.new("RGB", (40, 30), (230, 10, 10)), Image.new("RGB", (20, 20), (10, 10, 230)),
          Image.new("RGB", (32, 32), (10, 200, 10)), Image.new("RGB", (24, 36), (200, 200, 20))]


def _model(weight: float = 0.5) -> MMEmbedModel:
    cfg = mmembed.get_config("tiny-random")
    cfg.image_centering = ImageCenteringConfig(weight=weight, fit_images=3)
    return MMEmbedModel(cfg)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_centering_subtracts_the_weighted_mean_and_renormalizes():
    centering = ImageCentering(ImageCenteringConfig(weight=0.5), dim=3)
    centering.mean.copy_(torch.tensor([0.6, 0.0, 0.0]))
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0.0], [0.7, -0.7, 0.1]]), dim=-1)
    expected = torch.nn.functional.normalize(emb - torch.tensor([0.3, 0.0, 0.0]), dim=-1)
    torch.testing.assert_close(centering(emb), expected)


def test_fit_sets_the_mean_of_uncentered_embeddings_and_only_images_alone_move():
    model = _model()
    raw = model.encode_image(IMAGES)  # mean still zero: no effect
    module, model.image_centering = model.image_centering, None
    np.testing.assert_allclose(model.encode_image(IMAGES), raw, atol=1e-6)
    model.image_centering = module
    assert fit_image_centering(model, IMAGES, seed=0) == 3  # fit_images caps the sample
    assert model.image_centering is module  # put back after fitting with it off
    fitted = module.mean.numpy()
    assert any(np.allclose(fitted, raw[rows].mean(0), atol=1e-5)
               for rows in ([0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]))
    np.testing.assert_allclose(model.encode_image(IMAGES), _unit(raw - 0.5 * fitted), atol=1e-5)
    text, fused = "a red square", (IMAGES[1], "ein blaues Quadrat")
    mixed = model.encode([text, IMAGES[0], fused])
    np.testing.assert_allclose(mixed[1], model.encode_image(IMAGES[:1])[0], atol=1e-5)  # an image alone: centered
    model.image_centering = None
    try:
        np.testing.assert_allclose(mixed[0], model.encode_text([text])[0], atol=1e-5)  # text: never centered
        np.testing.assert_allclose(mixed[2], model.encode([fused])[0], atol=1e-5)  # image + text: not centered
    finally:
        model.image_centering = module


def test_centering_is_saved_loaded_and_switched_off_as_off(tmp_path):
    model = _model(weight=0.3)
    fit_image_centering(model, IMAGES)
    assert "image_centering.mean" in trained_state_dict(model)
    model.save(tmp_path / "saved")
    loaded = mmembed.load(str(tmp_path / "saved"))
    assert loaded.config.image_centering == ImageCenteringConfig(weight=0.3, fit_images=3)
    torch.testing.assert_close(loaded.image_centering.mean, model.image_centering.mean)
    np.testing.assert_array_equal(loaded.encode_image(IMAGES), model.encode_image(IMAGES))
    loaded.image_centering = None
    loaded.save(tmp_path / "off")
    off = mmembed.load(str(tmp_path / "off"))
    assert off.config.image_centering is None and off.image_centering is None
    assert json.loads((tmp_path / "off" / "config.json").read_text())["image_centering"] is None


@pytest.mark.parametrize("bad, match", [(dict(weight=-0.1), r"weight must be in \[0, 1\]"),
                                        (dict(weight=1.5), r"weight must be in \[0, 1\]"),
                                        (dict(fit_images=1), "fit_images must be >= 2")])
def test_bad_centering_settings_are_named(bad, match):
    cfg = mmembed.get_config("tiny-random")
    cfg.image_centering = ImageCenteringConfig(**bad)
    with pytest.raises(ValueError, match=match):
        MMEmbedModel(cfg)


def test_fitting_needs_a_centering_and_two_images():
    with pytest.raises(ValueError, match="has no image centering to fit"):
        fit_image_centering(MMEmbedModel(mmembed.get_config("tiny-random")), IMAGES)
    with pytest.raises(ValueError, match="needs at least 2 images, got 1"):
        fit_image_centering(_model(), IMAGES[:1])
    cfg = mmembed.get_config("tiny-random")
    cfg.image_tower = None
    cfg.image_centering = ImageCenteringConfig()
    with pytest.raises(ValueError, match="image_centering needs an image tower"):
        MMEmbedModel(cfg)
