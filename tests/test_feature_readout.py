"""Feature read-out: image embeddings plus a direct map of the tower's pooled features (mmembed.feature_readout)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmembed
from mmembed.config import FeatureReadoutConfig
from mmembed.data.manifest import PairRecord, write_manifest
from mmembed.encoding import EncodeInputError
from mmembed.feature_readout import FeatureReadout, pooled_features
from mmembed.model import MMEmbedModel
from mmembed.serialization import trained_state_dict
from mmembed.training.config import SourceSpec, TrainConfig
from mmembed.training.pairs import group_pairs, pairs_from_manifest
from mmembed.training.readout import backbone_image_embeddings, fit_feature_readout, readout_fit_data, readout_pictures
from mmembed.training.trainer import Trainer

from swatch_fixtures import SWATCHES, swatch_images, write_swatches

# 600 steps: every fit seed 0..5 and model seed 0..9 reaches train R@1 1.0 (150 steps stopped at exactly 0.75, and
# 300 steps gave 0.375-1.0 over fit seeds), so the `>= 0.75` checks below have slack
FIT = FeatureReadoutConfig(weight=1.0, fit_steps=600, fit_batch_size=8, fit_lr=3e-2, fit_captions_per_image=2)


@pytest.fixture(scope="module")
def swatches(tmp_path_factory) -> Path:
    return write_swatches(tmp_path_factory.mktemp("swatches"))


def _model(cfg: FeatureReadoutConfig = FIT) -> MMEmbedModel:
    torch.manual_seed(0)  # the random weights are the test's, not whatever earlier tests left in the global generator
    config = mmembed.get_config("tiny-random")
    config.image_trained = True
    config.feature_readout = cfg
    return MMEmbedModel(config)


def _sources(swatches: Path):
    return [group_pairs("swatches", pairs_from_manifest(swatches / "train.jsonl"))]


def _images(swatches: Path) -> list[Path]:
    return swatch_images(swatches)


def test_the_readout_adds_a_unit_vector_of_the_standardized_pooled_features_and_renormalizes():
    readout = FeatureReadout(FeatureReadoutConfig(weight=0.5), in_channels=4, dim=3)
    maps = torch.arange(2 * 4 * 2 * 2, dtype=torch.float32).reshape(2, 4, 2, 2)  # (n, C, h, w)
    torch.testing.assert_close(pooled_features(maps), maps.mean(dim=(2, 3)))
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), dim=-1)
    torch.testing.assert_close(readout(emb, maps), emb)  # unfitted: zero map, so nothing is added
    with torch.no_grad():
        readout.map.weight.copy_(torch.eye(3, 4))
        readout.feature_mean.fill_(1.0)
        readout.feature_std.fill_(2.0)
    direction = torch.nn.functional.normalize((maps.mean(dim=(2, 3)) - 1.0)[:, :3] / 2.0, dim=-1)
    torch.testing.assert_close(readout(emb, maps), torch.nn.functional.normalize(emb + 0.5 * direction, dim=-1))


def test_the_confidence_gate_gives_a_picture_the_classifier_is_sure_of_little_readout():
    readout = FeatureReadout(FeatureReadoutConfig(weight=1.0, confidence_gate=True), in_channels=3, dim=3)
    with torch.no_grad():
        readout.map.weight.copy_(torch.eye(3))
    maps = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])[:, :, None, None]  # (2, C, 1, 1): read-out = e_z
    emb = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    logits = torch.tensor([[20.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # sure (p ~ 1) / unsure (p = 0.25)
    out = readout(emb, maps, logits)
    torch.testing.assert_close(out[0], emb[0], atol=1e-6, rtol=0)  # weight ~ 1 - 1
    torch.testing.assert_close(out[1], torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 0.75]), dim=0))
    with pytest.raises(ValueError, match="confidence_gate needs the tower's classifier logits"):
        readout(emb, maps)

def test_readout_pictures_are_each_picture_once_with_a_sample_of_its_captions(swatches):
    pictures = readout_pictures(_sources(swatches), captions_per_image=2, seed=0)
    assert sorted(Path(p.image).stem for p in pictures) == sorted(SWATCHES)
    assert all(len(p.captions) == 2 and len(set(p.captions)) == 2 for p in pictures)
    assert readout_pictures(_sources(swatches), captions_per_image=2, seed=0) == pictures  # seeded


def test_fitting_finds_each_swatch_from_its_caption_and_moves_only_images_alone(swatches):
    model = _model()
    texts = ["a red square", "ein blaues Quadrat"]
    before_text = model.encode_text(texts)
    before_images = model.encode_image(_images(swatches))
    report = fit_feature_readout(model, _sources(swatches), seed=0)
    assert report.pictures == 8 and report.captions == 16 and report.steps == 600
    assert report.train_r1 >= 0.75, report  # 8 solid colours: the read-out alone tells them apart
    np.testing.assert_array_equal(model.encode_text(texts), before_text)  # texts never pass through it
    after_images = model.encode_image(_images(swatches))
    assert not np.allclose(after_images, before_images, atol=1e-3)
    fused = (Image.open(_images(swatches)[0]), "a red square")
    mixed = model.encode([texts[0], _images(swatches)[0], fused])
    np.testing.assert_allclose(mixed[1], after_images[0], atol=1e-5)  # an image alone: read out
    module, model.feature_readout = model.feature_readout, None
    try:
        np.testing.assert_allclose(mixed[2], model.encode([fused])[0], atol=1e-5)  # image + caption: not
        np.testing.assert_allclose(model.encode_image(_images(swatches)), before_images, atol=1e-6)
    finally:
        model.feature_readout = module
    again = _model()
    fit_feature_readout(again, _sources(swatches), seed=0)
    np.testing.assert_array_equal(again.encode_image(_images(swatches)), after_images)  # the same seed, the same fit


def test_a_sum_target_fit_aligns_the_embedding_the_readout_makes_with_the_backbone_path(swatches):
    cfg = dataclasses.replace(FIT, weight=2.0, fit_target="sum")
    model = _model(cfg)
    sources = _sources(swatches)
    data = readout_fit_data(model, sources, captions_per_image=2, seed=0, image_embeddings=True)
    assert data.features.shape[0] == data.logits.shape[0] == data.image_emb.shape[0] == 8
    # e: what encode_image gives without the read-out (an unfitted read-out adds nothing)
    files = [i for i, p in enumerate(data.pictures) if p.image is not None]
    np.testing.assert_allclose(data.image_emb[files].numpy(),
                               model.encode_image([data.pictures[i].image for i in files]), atol=1e-5)
    report = fit_feature_readout(model, sources, seed=0, data=data)
    assert report.train_r1 >= 0.75, report  # measured on normalize(e + 2 * readout), what inference gives
    sums = model.encode_image([data.pictures[i].image for i in files], as_tensor=True)
    texts = model.encode_text([data.pictures[i].captions[0] for i in files], as_tensor=True)
    assert (texts @ sums.T).argmax(dim=1).eq(torch.arange(len(files))).float().mean() >= 0.75
    again = _model(cfg)
    fit_feature_readout(again, sources, seed=0)  # computing its own data: the same fit
    np.testing.assert_array_equal(again.encode_image(_images(swatches)), model.encode_image(_images(swatches)))


def test_a_sum_target_fit_needs_the_backbone_embeddings(swatches):
    model = _model(dataclasses.replace(FIT, fit_target="sum"))
    data = readout_fit_data(model, _sources(swatches), captions_per_image=2, seed=0, image_embeddings=False)
    with pytest.raises(ValueError, match="fit_target = 'sum' needs the pictures' backbone embeddings"):
        fit_feature_readout(model, _sources(swatches), data=data)
    np.testing.assert_allclose(backbone_image_embeddings(model, data.pictures).numpy(),
                               model.encode_image([p.image for p in data.pictures]), atol=1e-5)  # computed on its own


def test_a_sum_target_fit_is_refused_for_a_model_that_centres_images(swatches):
    from mmembed.config import ImageCenteringConfig

    model = _model(dataclasses.replace(FIT, fit_target="sum"))
    model.config.image_centering = ImageCenteringConfig()
    model.add_image_centering()
    with pytest.raises(ValueError, match="fit_target = 'sum' is not supported with it"):
        fit_feature_readout(model, _sources(swatches), seed=0)


def test_backbone_embeddings_of_feature_rows_are_the_trainers(swatches, tmp_path):
    from mmembed.data.feature_table import write_feature_table
    from mmembed.data.manifest import FeatureRef
    from mmembed.training.embedder import PairEmbedder
    from mmembed.vision import tower_channels

    model = _model(dataclasses.replace(FIT, fit_target="sum"))
    rows = 4 * torch.rand(3, tower_channels(model.image_tower), generator=torch.Generator().manual_seed(0))
    write_feature_table(tmp_path / "protos.safetensors", {"features": rows}, ["a", "b", "c"])
    write_manifest(tmp_path / "train.jsonl", [PairRecord(concept=f"wordnet:{n}", caption=f"a photo of {n}", lang="en",
                                                         kind="name", features=FeatureRef("protos.safetensors", "features", i))
                                              for i, n in enumerate("abc")])
    sources = _sources(swatches) + [group_pairs("protos", pairs_from_manifest(tmp_path / "train.jsonl"))]
    data = readout_fit_data(model, sources, captions_per_image=2, seed=0, image_embeddings=True)
    refs = [p.features for p in data.pictures if p.features is not None]
    assert len(data.pictures) == 11 and len(refs) == 3
    torch.testing.assert_close(data.features[-3:], rows)  # feature rows as they are
    with torch.no_grad():
        expected = PairEmbedder(model).feature_anchors(refs).float()
    torch.testing.assert_close(data.image_emb[-3:], expected, atol=1e-5, rtol=0)
    assert fit_feature_readout(model, sources, data=data).pictures == 11


def test_the_readout_is_saved_loaded_and_switched_off_as_off(swatches, tmp_path):
    model = _model(FeatureReadoutConfig(weight=0.7, hidden=16, fit_steps=20, fit_batch_size=8))
    fit_feature_readout(model, _sources(swatches))
    assert {"feature_readout.feature_mean", "feature_readout.map.0.weight"} <= set(trained_state_dict(model))
    model.save(tmp_path / "saved")
    loaded = mmembed.load(str(tmp_path / "saved"))
    assert loaded.config.feature_readout == model.config.feature_readout
    np.testing.assert_array_equal(loaded.encode_image(_images(swatches)), model.encode_image(_images(swatches)))
    from mmembed.serialization import model_fingerprint

    before = model_fingerprint(loaded)
    # a query image's weight shapes no stored vector (an index holds documents): a collection keeps the model
    loaded.feature_readout.cfg = dataclasses.replace(loaded.feature_readout.cfg, query_weight=1.5)
    assert model_fingerprint(loaded) == before
    loaded.feature_readout.cfg = dataclasses.replace(loaded.feature_readout.cfg, weight=0.5)  # README's knob
    assert model_fingerprint(loaded) != before  # a collection refuses vectors made at another weight
    loaded.feature_readout = None
    loaded.save(tmp_path / "off")
    off = mmembed.load(str(tmp_path / "off"))
    assert off.feature_readout is None and json.loads((tmp_path / "off" / "config.json").read_text())["feature_readout"] is None


def test_a_readout_only_recipe_fits_it_at_export_and_leaves_the_rest_of_the_base(swatches, tmp_path):
    base = _model(FeatureReadoutConfig())  # no read-out fitted yet ...
    base.config.feature_readout = None
    base.feature_readout = None
    base.save(tmp_path / "base")
    cfg = TrainConfig(base=str(tmp_path / "base"), out=str(tmp_path / "run"), name="with-readout", steps=0,
                      batch_size=8, freeze_lora=True, freeze_text_side=True, feature_readout=FIT, seed=1,
                      sources=[SourceSpec(name="swatches", path=str(swatches / "train.jsonl"))])
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    trainer.export(tmp_path / "run" / "final")
    trainer.export(tmp_path / "export")  # as `mmembed train --export`: the second export reuses the fit
    out = mmembed.load(str(tmp_path / "export"))
    assert out.config.feature_readout == FIT
    base = mmembed.load(str(tmp_path / "base"))
    np.testing.assert_array_equal(out.encode_text(["a red square"]), base.encode_text(["a red square"]))
    state, base_state = trained_state_dict(out), trained_state_dict(base)
    assert all(torch.equal(state[k], v) for k, v in base_state.items())  # ... and nothing else moved
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    fitted = [r["feature_readout"] for r in log if "feature_readout" in r]
    assert len(fitted) == 1 and fitted[0]["pictures"] == 8 and fitted[0]["train_r1"] >= 0.75


def test_a_fine_tune_without_a_readout_table_keeps_the_base_readout(swatches, tmp_path):
    base = _model(FeatureReadoutConfig(fit_steps=20, fit_batch_size=8))
    fit_feature_readout(base, _sources(swatches))
    base.save(tmp_path / "base")
    cfg = TrainConfig(base=str(tmp_path / "base"), out=str(tmp_path / "run"), name="fine-tuned", steps=2, batch_size=4,
                      freeze_lora=True, seed=1, sources=[SourceSpec(name="two", path=str(swatches / "train.jsonl"),
                                                                    langs=["en"])])
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    out = trainer.export(tmp_path / "export")
    tuned, kept = mmembed.load(str(out)).feature_readout.state_dict(), base.feature_readout.state_dict()
    assert kept.keys() == tuned.keys() and all(torch.equal(kept[k], tuned[k]) for k in kept)

def test_a_query_image_gets_the_query_weight_and_a_document_image_the_weight(swatches, tmp_path):
    gated = dataclasses.replace(FIT, weight=0.25, query_weight=1.5, confidence_gate=True)
    model = _model(gated)
    fit_feature_readout(model, _sources(swatches), seed=0)
    images = _images(swatches)
    document, query = model.encode_image(images), model.encode_image(images, role="query")
    np.testing.assert_array_equal(model.encode_image(images, role="document"), document)  # the default role
    assert not np.allclose(document, query, atol=1e-3)
    # each role is the read-out added with that role's weight: the same as a one-weight model at that weight
    for weight, expected in ((0.25, document), (1.5, query)):
        model.feature_readout.cfg = dataclasses.replace(gated, weight=weight, query_weight=None)
        for role in ("document", "query"):  # without query_weight, both roles get the weight
            np.testing.assert_allclose(model.encode_image(images, role=role), expected, atol=1e-5)
    model.feature_readout.cfg = gated
    mixed = model.encode(["a red square", images[0]], role="query")
    np.testing.assert_allclose(mixed[1], query[0], atol=1e-5)
    np.testing.assert_array_equal(mixed[0], model.encode_text(["a red square"])[0])  # texts have no image role
    model.save(tmp_path / "saved")
    loaded = mmembed.load(str(tmp_path / "saved"))
    assert loaded.config.feature_readout.query_weight == 1.5
    np.testing.assert_array_equal(loaded.encode_image(images, role="query"), query)


def test_an_image_role_outside_document_and_query_is_named(swatches):
    model = _model()
    for call in (lambda: model.encode_image(_images(swatches)[:1], role="passage"),
                 lambda: model.encode([_images(swatches)[0]], role=None)):
        with pytest.raises(EncodeInputError, match="role must be 'document' .* or 'query' .* got 'passage'|got None"):
            call()
    with pytest.raises(ValueError, match="image role must be one of"):
        model.feature_readout.weights(1, None, "cpu", role="passage")


@pytest.mark.parametrize("bad, match", [(dict(weight=-1.0), "weight must be >= 0"), (dict(hidden=-2), "hidden must be >= 0"),
                                        (dict(query_weight=-0.5), "query_weight must be >= 0 or None"),
                                        (dict(fit_target="both"), "fit_target must be one of 'readout', 'sum'")])
def test_bad_readout_settings_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        _model(FeatureReadoutConfig(**bad))


def test_fitting_needs_a_readout_and_two_pictures(swatches):
    with pytest.raises(ValueError, match="has no feature read-out to fit"):
        fit_feature_readout(MMEmbedModel(mmembed.get_config("tiny-random")), _sources(swatches))
    one = [group_pairs("one", [p for p in pairs_from_manifest(swatches / "train.jsonl") if "red" in p.image])]
    with pytest.raises(ValueError, match="needs at least 2 pictures"):
        fit_feature_readout(_model(), one)
    cfg = mmembed.get_config("tiny-random")
    cfg.image_tower = None
    cfg.feature_readout = FeatureReadoutConfig()
    with pytest.raises(ValueError, match="feature_readout needs an image tower"):
        MMEmbedModel(cfg)
