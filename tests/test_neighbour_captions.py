"""Neighbour captions: image embeddings plus the caption embeddings of their look-alike training pictures
(mmembed.neighbour_captions, mmembed.training.neighbours)."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmembed
from mmembed.config import LoraConfig, ModelConfig, NeighbourCaptionsConfig
from mmembed.data.manifest import PairRecord, write_manifest
from mmembed.encoding import EncodeInputError
from mmembed.model import MMEmbedModel
from mmembed.neighbour_captions import NeighbourCaptions
from mmembed.neighbour_pictures import KeyGroups, NeighbourPictures
from mmembed.serialization import _fingerprint_config, model_fingerprint
from mmembed.training.config import SourceSpec, TrainConfig
from mmembed.training.neighbours import build_neighbour_captions
from mmembed.training.pairs import group_pairs, pairs_from_manifest
from mmembed.training.trainer import Trainer
from mmembed.vision import tower_channels

from swatch_fixtures import SWATCHES, swatch_images, write_swatches

MEMORY = NeighbourCaptionsConfig(weight=1.0, query_weight=0.5, k=1, key_dims=0, captions_per_image=3)


@pytest.fixture(scope="module")
def swatches(tmp_path_factory) -> Path:
    return write_swatches(tmp_path_factory.mktemp("swatches"))


def _model(cfg: NeighbourCaptionsConfig = MEMORY) -> MMEmbedModel:
    config = mmembed.get_config("tiny-random")
    config.image_trained = True
    config.neighbour_captions = dataclasses.replace(cfg)
    return MMEmbedModel(config)


def _sources(swatches: Path):
    return [group_pairs("swatches", pairs_from_manifest(swatches / "train.jsonl"))]


def test_a_picture_in_the_memory_gets_its_own_captions_and_an_empty_memory_adds_nothing():
    memory = NeighbourCaptions(dataclasses.replace(MEMORY), in_channels=4, dim=3)
    maps = torch.tensor([[4.0, 0.0, 0.0, 1.0], [0.0, 3.0, 1.0, 0.0]])[:, :, None, None]  # (2, C, 1, 1)
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]), dim=-1)
    torch.testing.assert_close(memory(emb, maps), emb)  # size 0: nothing to borrow
    pooled = torch.tensor([[4.0, 0.0, 0.0, 1.0], [0.0, 3.0, 1.0, 0.0], [0.0, 0.0, 2.0, 2.0]])  # (N, C)
    values = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # (N, D): any length
    memory.fill(pooled, values)
    assert memory.size == 3 and memory.cfg.size == 3 and memory.keys.dtype == torch.float16
    # k = 1: the nearest picture is the image itself, so its own (unit) value is added, with the role's weight
    expect_doc = torch.nn.functional.normalize(emb + torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), dim=-1)
    expect_query = torch.nn.functional.normalize(emb + 0.5 * torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), dim=-1)
    torch.testing.assert_close(memory(emb, maps), expect_doc, atol=1e-3, rtol=0)
    torch.testing.assert_close(memory(emb, maps, role="query"), expect_query, atol=1e-3, rtol=0)
    # the scale of the features does not matter (keys are directions), only what they look like
    torch.testing.assert_close(memory(emb, 10 * maps), memory(emb, maps))
    with pytest.raises(ValueError, match="image role"):
        memory(emb, maps, role="thumbnail")
    memory.cfg.query_weight = 0.0  # a role weighted 0 keeps its embeddings bit for bit (bf16 rows are not renormalized)
    rows = emb.to(torch.bfloat16)
    assert memory.on_rows(rows, [0, 1], maps, role="query") is rows
    assert not torch.equal(memory.on_rows(rows, [0, 1], maps), rows)


def test_keys_keep_the_principal_directions_and_k_mixes_by_similarity():
    gen = torch.Generator().manual_seed(0)
    pooled = torch.randn(10, 16, generator=gen).abs()
    values = torch.randn(10, 5, generator=gen)
    full = NeighbourCaptions(NeighbourCaptionsConfig(k=3, key_dims=0), in_channels=16, dim=5)
    small = NeighbourCaptions(NeighbourCaptionsConfig(k=3, key_dims=9), in_channels=16, dim=5)
    full.fill(pooled, values)
    small.fill(pooled, values)
    assert small.keys.shape == (10, 9) and small.key_basis.shape == (16, 9)
    # 10 centred unit rows span 9 directions: keeping those 9 gives every channel's cosines, up to fp16 storage
    torch.testing.assert_close(small.key(pooled) @ small.keys.float().T, full.key(pooled) @ full.keys.float().T,
                               atol=1e-2, rtol=0)
    tiny = NeighbourCaptions(NeighbourCaptionsConfig(key_dims=8), in_channels=16, dim=5)
    tiny.fill(pooled[:3], values[:3])  # fewer pictures than key dims: padded, still a working memory (k > N too)
    assert tiny.keys.shape == (3, 8) and torch.isfinite(tiny.neighbours(pooled)).all()
    mixed = full.neighbours(pooled[:1])  # a softmax mix of 3 values: closest to the picture's own
    assert torch.nn.functional.cosine_similarity(mixed, torch.nn.functional.normalize(values[:1], dim=-1)).item() > 0.5


def test_an_int8_memory_mixes_what_the_fp16_one_does_in_half_the_bytes_and_survives_save_and_load(tmp_path):
    gen = torch.Generator().manual_seed(0)
    pooled, values = torch.randn(40, 16, generator=gen).abs(), torch.randn(40, 12, generator=gen)
    half, eight = (NeighbourCaptions(NeighbourCaptionsConfig(k=3, key_dims=8, memory_bits=bits), in_channels=16, dim=12)
                   for bits in (16, 8))
    half.fill(pooled, values)
    eight.fill(pooled, values)
    assert eight.keys.dtype == eight.values.dtype == torch.int8 and eight.key_scale.shape == eight.value_scale.shape == (40,)
    stored = lambda m: sum(b.numel() * b.element_size() for n, b in m.named_buffers() if n in {
        "keys", "values", "key_scale", "value_scale"})
    assert (stored(half), stored(eight)) == (40 * (8 + 12) * 2, 40 * (8 + 12) + 40 * 2 * 2)  # 1 byte an entry + scales
    torch.testing.assert_close(eight.memory_values(torch.arange(40)), half.memory_values(torch.arange(40)),
                               atol=1e-2, rtol=0)  # int8 rows: within a step of 1/127 of each row's largest entry
    query = pooled + 0.1 * torch.randn(40, 16, generator=gen).abs()
    torch.testing.assert_close(eight.neighbours(query), half.neighbours(query), atol=3e-2, rtol=0)
    # through a model's save and load: the int8 buffers and scales come back bit for bit, vectors equal
    model = _model(NeighbourCaptionsConfig(memory_bits=8))
    model.neighbour_captions.fill(torch.rand(6, tower_channels(model.image_tower), generator=gen),
                                  torch.rand(6, model.dim, generator=gen))
    model.save(tmp_path / "int8")
    assert json.loads((tmp_path / "int8" / "config.json").read_text())["neighbour_captions"]["memory_bits"] == 8
    loaded = mmembed.load(str(tmp_path / "int8"))
    for name in ("keys", "values", "key_scale", "value_scale"):
        assert torch.equal(getattr(loaded.neighbour_captions, name), getattr(model.neighbour_captions, name))
    assert model_fingerprint(loaded) == model_fingerprint(model)
    assert _fingerprint_config(loaded)["neighbour_captions"]["memory_bits"] == 8  # a different storage, another space


def test_bad_memories_and_settings_are_refused_with_what_is_wrong():
    memory = NeighbourCaptions(NeighbourCaptionsConfig(), in_channels=4, dim=3)
    with pytest.raises(ValueError, match="4 channels and values 3 dims, got 5 and 3"):
        memory.fill(torch.ones(2, 5), torch.ones(2, 3))
    with pytest.raises(ValueError, match="N >= 1"):
        memory.fill(torch.ones(2, 4), torch.ones(3, 3))
    assert NeighbourCaptions(NeighbourCaptionsConfig(key_dims=256), in_channels=4, dim=3).key_basis.shape == (4, 4)
    for bad in ({"k": 0}, {"temperature": 0.0}, {"weight": -1.0}, {"query_weight": -0.1}, {"size": -1},
                {"memory_bits": 4}, {"memory_bits": "8"}, {"memory_bits": 8.0}):
        with pytest.raises(ValueError, match="neighbour_captions"):
            NeighbourCaptionsConfig(**bad)


def test_building_from_the_training_pictures_moves_images_alone_and_survives_save_and_load(swatches, tmp_path):
    model = _model()
    texts = ["a red square", "ein blaues Quadrat"]
    before_text, before_images = model.encode_text(texts), model.encode_image(swatch_images(swatches))
    report = build_neighbour_captions(model, _sources(swatches), seed=0)
    assert (report.pictures, report.captions) == (8, 24) and model.config.neighbour_captions.size == 8
    np.testing.assert_array_equal(model.encode_text(texts), before_text)  # texts never pass through it
    after = model.encode_image(swatch_images(swatches))
    assert not np.allclose(after, before_images, atol=1e-3)
    # k = 1 and each swatch is its own nearest picture: it gets the mean embedding of its own three captions
    red = model.encode_text(["a red square", "ein rotes Quadrat", "red (fr)"], as_tensor=True).mean(dim=0)
    expect = torch.nn.functional.normalize(torch.from_numpy(before_images[0]) + torch.nn.functional.normalize(red, dim=0), dim=0)
    np.testing.assert_allclose(after[0], expect.numpy(), atol=2e-3)
    fused = (Image.open(swatch_images(swatches)[0]), "a red square")
    mixed = model.encode([fused])
    memory, model.neighbour_captions = model.neighbour_captions, None
    np.testing.assert_allclose(model.encode([fused]), mixed, atol=1e-6)  # an image with its caption: not
    model.neighbour_captions = memory
    model.save(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["neighbour_captions"]["size"] == 8
    loaded = mmembed.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(loaded.encode_image(swatch_images(swatches)), after, atol=1e-6)
    assert model_fingerprint(loaded) == model_fingerprint(model)


def test_a_model_without_a_memory_keeps_the_fingerprint_older_versions_computed():
    model = mmembed.load("tiny-random")
    assert "neighbour_captions" not in _fingerprint_config(model)  # the section did not exist before session 44
    before = model_fingerprint(model)
    model.config.neighbour_captions = NeighbourCaptionsConfig()
    model.add_neighbour_captions()
    model.neighbour_captions.fill(torch.rand(4, tower_channels(model.image_tower)), torch.rand(4, model.dim))
    assert model_fingerprint(model) != before
    assert "memory_bits" not in _fingerprint_config(model)["neighbour_captions"]  # fp16, as saved before session 47
    model.neighbour_captions.cfg.query_weight = 0.9  # a query image's weight changes no stored vector
    with_memory = model_fingerprint(model)
    model.neighbour_captions.cfg.query_weight = 0.1
    assert model_fingerprint(model) == with_memory
    assert ModelConfig.from_dict(model.config.to_dict()).neighbour_captions == model.config.neighbour_captions


def _recipe(swatches: Path, tmp_path: Path, base: Path, **kw) -> TrainConfig:
    return TrainConfig(base=str(base), out=str(tmp_path / "run"), name="with-memory", batch_size=8, seed=1,
                       sources=[SourceSpec(name="swatches", path=str(swatches / "train.jsonl"))], **kw)


def test_a_memory_only_recipe_builds_it_at_export_and_leaves_the_rest_of_the_base(swatches, tmp_path):
    base = mmembed.load("tiny-random")
    base.config.image_trained = True
    base.save(tmp_path / "base")
    cfg = _recipe(swatches, tmp_path, tmp_path / "base", steps=0, freeze_lora=True, freeze_text_side=True,
                  neighbour_captions=dataclasses.replace(MEMORY, size=99))  # a recipe's size is ignored: the run's pictures count
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    trainer.export(tmp_path / "export")
    out = mmembed.load(str(tmp_path / "export"))
    assert out.neighbour_captions.size == 8 and out.config.neighbour_captions.size == 8
    base = mmembed.load(str(tmp_path / "base"))
    np.testing.assert_array_equal(out.encode_text(["a red square"]), base.encode_text(["a red square"]))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["neighbour_captions"]["pictures"] for r in log if "neighbour_captions" in r] == [8]


def test_a_float16_recipe_builds_its_memory_from_the_weights_as_stored_and_only_when_they_changed(
        swatches, tmp_path, monkeypatch):
    """storage_dtype = "float16" rounds the text side at export, so a memory (text embeddings) built at the last dev
    scoring, from the weights before rounding, is built again; `mmembed train --export` exports twice (RUN/final,
    then the folder asked for), and the second finds nothing left to round or rebuild."""
    from mmembed.training import trainer as trainer_module
    from mmembed.training.config import DevSpec

    config = mmembed.get_config("tiny-random")
    config.image_trained, config.lora = True, LoraConfig(r=4, alpha=8)
    base = MMEmbedModel(config)
    with torch.no_grad():
        for name, p in base.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a text side float16 rounds
    base.save(tmp_path / "base")
    built_from_stored = []  # per build: were the LoRA weights float16 values?
    build = trainer_module.build_neighbour_captions

    def spy(model, *args, **kwargs):
        lora = [p for n, p in model.backbone.named_parameters() if "lora_" in n]
        built_from_stored.append(all(torch.equal(p, p.half().float()) for p in lora))
        return build(model, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "build_neighbour_captions", spy)
    dev = [DevSpec(name="swatches", path=str(swatches / "train.jsonl"), langs=["en"], kinds=["name"])]
    cfg = _recipe(swatches, tmp_path, tmp_path / "base", steps=0, freeze_lora=True, freeze_text_side=True,
                  storage_dtype="float16", neighbour_captions=MEMORY, dev=dev)
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    trainer.evaluate()  # a dev scoring at the last step: built from the float32 weights
    trainer.export(tmp_path / "final")
    trainer.export(tmp_path / "export")
    assert built_from_stored == [False, True]
    out = mmembed.load(str(tmp_path / "export"))
    images = [str(p) for p in swatch_images(swatches)]  # documents: they borrow from the memory
    np.testing.assert_allclose(out.encode_image(images, role="document"),  # up to merging the LoRA anew, ~1e-7
                               trainer.model.encode_image(images, role="document"), rtol=0, atol=1e-6)


def test_key_draws_per_language_keep_a_language_s_keys_and_all_takes_every_caption(tmp_path):
    """text_key_draw = "per_language": English and German keys are the same whether French keys are drawn too; the
    "joint" draw of the shipped models re-draws them (why stage 48a lost 47b's German key "Apfel"). "all": every
    caption is a key, in the keys and in a built table."""
    from mmembed.training.neighbours import caption_keys
    from mmembed.training.readout import readout_pictures

    (tmp_path / "images").mkdir()
    recs = []
    for name, rgb in SWATCHES.items():
        Image.new("RGB", (8, 8), rgb).save(tmp_path / "images" / f"{name}.png")
        for lang in ("en", "de", "fr"):
            for i in range(4):  # four captions per picture and language: the draw picks one
                recs.append(PairRecord(concept=f"color:{name}", caption=f"{name} {lang} {i}", lang=lang,
                                       image=f"images/{name}.png", kind="name"))
    write_manifest(tmp_path / "train.jsonl", recs)
    sources = [group_pairs("swatches", pairs_from_manifest(tmp_path / "train.jsonl"))]
    pictures = readout_pictures(sources, 3, 0)

    def drawn(langs, draw):
        keys = caption_keys(sources, pictures, langs, 0, draw)
        return {(row, lang): text for text, row, lang in zip(keys.texts, keys.rows, keys.langs) if lang != "fr"}

    assert drawn(("en", "de"), "per_language") == drawn(("en", "de", "fr"), "per_language")
    assert len(drawn(("en", "de"), "per_language")) == 2 * len(SWATCHES)
    assert drawn(("en", "de"), "joint") != drawn(("en", "de", "fr"), "joint")
    # "all": nothing drawn, every caption of each picture and language is a key, whatever the seed
    every = caption_keys(sources, pictures, ("en", "de"), 0, "all")
    assert len(every.texts) == len(every.rows) == len(every.langs) == 2 * 4 * len(SWATCHES)
    assert sorted(every.texts) == sorted(f"{name} {lang} {i}" for name in SWATCHES for lang in ("en", "de")
                                         for i in range(4))
    assert all(text.split()[1] == lang for text, lang in zip(every.texts, every.langs))
    assert all(pictures[row].image.endswith(f"{text.split()[0]}.png") for text, row in zip(every.texts, every.rows))
    assert caption_keys(sources, pictures, ("en", "de"), 7, "all") == every
    model = _model(dataclasses.replace(TEXTS, text_key_draw="all"))
    build_neighbour_captions(model, sources, seed=0)
    assert model.config.neighbour_captions.text_size == len(model.neighbour_captions.texts.keys) == 3 * 4 * len(SWATCHES)
    with pytest.raises(ValueError, match="draw must be one of joint, per_language, all, got 'per-language'"):
        caption_keys(sources, pictures, ("en",), 0, "per-language")
    with pytest.raises(ValueError, match="text_key_draw must be one of 'joint', 'per_language', 'all', got 'random'"):
        NeighbourCaptionsConfig(text_key_draw="random")


@pytest.mark.parametrize("freeze_text_side", [True, False])
def test_a_fine_tune_without_the_table_keeps_the_memory_only_if_the_text_side_stays(swatches, tmp_path, caplog,
                                                                                     freeze_text_side):
    base = _model()
    build_neighbour_captions(base, _sources(swatches), seed=0)
    base.save(tmp_path / "base")
    # the tiny base has no LoRA and a parameter-free pooler: lora_r gives its text side something to train
    text = {"freeze_lora": True} if freeze_text_side else {"lora_r": 4}
    cfg = _recipe(swatches, tmp_path, tmp_path / "base", steps=1, freeze_text_side=freeze_text_side, **text)
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(cfg, progress=False)
        trainer.run()
        trainer.export(tmp_path / "export")
    out = mmembed.load(str(tmp_path / "export"))
    if freeze_text_side:  # only the projector trained: the memory's text embeddings still hold
        assert out.neighbour_captions is not None and out.neighbour_captions.size == len(SWATCHES)
        torch.testing.assert_close(out.neighbour_captions.values, base.neighbour_captions.values)
    else:
        assert out.neighbour_captions is None and out.config.neighbour_captions is None
        assert "memory (text embeddings of the old text side) is dropped" in caplog.text


def test_a_soup_keeps_one_shared_memory_and_refuses_two_different_ones(tmp_path):
    from mmembed.training.soup import SoupError, average_models

    gen = torch.Generator().manual_seed(0)
    memory = (torch.rand(6, 256, generator=gen), torch.rand(6, 64, generator=gen))
    folders = []
    for i, shift in enumerate((0.0, 0.0, 0.5)):
        model = _model(NeighbourCaptionsConfig())
        with torch.no_grad():
            model.projector.position.add_(0.01 * i)  # runs of one base differ in their image side
        model.neighbour_captions.fill(memory[0], memory[1] + shift)
        model.save(tmp_path / f"m{i}")
        folders.append(tmp_path / f"m{i}")
    report = average_models(folders[:2], tmp_path / "soup")
    soup = mmembed.load(str(tmp_path / "soup"))
    assert report.differ and not any(k.startswith("neighbour_captions.") for k in report.differ)
    torch.testing.assert_close(soup.neighbour_captions.values, mmembed.load(str(folders[0])).neighbour_captions.values)
    with pytest.raises(SoupError, match="differ in their memories: soup models without one"):
        average_models([folders[0], folders[2]], tmp_path / "soup2")
    assert not (tmp_path / "soup2").exists()


def test_a_recipe_with_a_memory_but_only_texts_is_refused_before_anything_runs(tmp_path):
    from mmembed.data.manifest import PairRecord, write_manifest

    recs = [PairRecord(concept=f"w{i}", caption=de, lang="de", text=en, text_lang="en")
            for i, (en, de) in enumerate([("dog", "Hund"), ("cat", "Katze"), ("house", "Haus"), ("tree", "Baum")])]
    write_manifest(tmp_path / "words.jsonl", recs)
    cfg = TrainConfig(base="tiny-random", out=str(tmp_path / "run"), name="texts-only", batch_size=4, steps=1,
                      sources=[SourceSpec(name="words", path=str(tmp_path / "words.jsonl"))],
                      neighbour_captions=NeighbourCaptionsConfig())
    with pytest.raises(ValueError, match="'texts-only': a \\[neighbour_captions\\] table needs pictures .* words hold only texts"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "run" / "model").exists()


# ---- the memory read the other way: texts borrow the pictures their words name (session 45) ----------------------
TEXTS = dataclasses.replace(MEMORY, text_weight=0.5, text_k=1)


def test_a_text_borrows_the_picture_whose_captions_it_matches_and_nothing_until_the_table_is_built():
    memory = NeighbourCaptions(dataclasses.replace(TEXTS, text_key_dims=3, text_picture_dims=3), in_channels=4, dim=3)
    pooled = torch.tensor([[4.0, 0.0, 0.0, 1.0], [0.0, 3.0, 1.0, 0.0], [0.0, 0.0, 2.0, 2.0]])  # (N, C)
    captions = torch.tensor([[0.0, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # (N, D) caption means
    pictures = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])  # (N, D) image embeddings
    keys = torch.tensor([[0.0, 0.2, 1.0], [1.0, 0.0, 0.1], [0.0, 1.0, 0.0], [0.9, 0.1, 0.0]])  # (M, D) caption keys
    key_picture = torch.tensor([0, 1, 2, 1])  # the picture of each key (two keys name picture 1)
    text = torch.nn.functional.normalize(torch.tensor([[0.1, 0.0, 1.0], [1.0, 0.2, 0.0]]), dim=-1)  # near 0 and 1
    memory.fill(pooled, captions)
    assert not memory.reads_texts and memory.on_text_rows(text, [0, 1]) is text  # no table yet: untouched
    memory.fill_texts(keys, key_picture, pictures)
    assert memory.reads_texts and memory.texts.keys.dtype == torch.int8 and memory.cfg.text_size == 4
    unit = torch.nn.functional.normalize(pictures, dim=-1)
    expect = torch.nn.functional.normalize(text + 0.5 * unit[[0, 1]], dim=-1)  # k = 1: the nearest key's picture
    torch.testing.assert_close(memory.on_text_rows(text, [0, 1]), expect, atol=2e-2, rtol=0)
    only_first = memory.on_text_rows(text, [0])
    torch.testing.assert_close(only_first[1], text[1])  # rows not named (an image, a fused item) keep theirs
    memory.text_paused = True
    assert memory.on_text_rows(text, [0, 1]) is text
    memory.text_paused = False
    memory.fill(pooled, captions)  # a new memory: the old table belonged to the old pictures
    assert not memory.reads_texts and memory.cfg.text_size == 0
    with pytest.raises(ValueError, match="one picture embedding per memory picture \\(3\\), got 2"):
        memory.fill_texts(keys, key_picture, pictures[:2])
    with pytest.raises(ValueError, match="a key names picture row 5 of 3"):
        memory.fill_texts(keys, torch.tensor([0, 1, 2, 5]), pictures)
    off = NeighbourCaptions(dataclasses.replace(MEMORY), in_channels=4, dim=3)
    assert off.texts is None and off.on_text_rows(text, [0, 1]) is text  # text_weight 0: no table at all
    with pytest.raises(ValueError, match="text_weight is 0"):
        off.fill_texts(keys, key_picture, pictures)
    for bad in ({"text_weight": -1.0}, {"text_k": 0}, {"text_temperature": 0.0}, {"text_langs": ()},
                {"text_key_dims": 0}):
        with pytest.raises(ValueError, match="text_weight >= 0, text_k >= 1, text_temperature > 0"):
            NeighbourCaptionsConfig(**bad)


def test_tied_caption_keys_give_the_mean_of_all_their_pictures_whatever_their_order():
    """One caption text keyed to several pictures is one stored row repeated: every text finds those keys tied. With
    text_tied_keys = "mean" a tied key gives the mean of all their pictures, so which of the tie the top k happened
    to take (their order in the table) no longer matters; "any" (what shipped) takes a key's own picture."""
    pictures = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0],
         [0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]), dim=-1)  # (N, D) the pictures' document embeddings
    star, moon, sun = [1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2], [0.0, 1.0, 0.0, 1.0]
    keys = torch.tensor([star, star, moon, star, star, sun])  # (M, D): "star" keyed to pictures 0, 1, 3 and 4
    key_picture = torch.tensor([0, 1, 2, 3, 4, 5])
    query = torch.nn.functional.normalize(torch.tensor([star, moon]), dim=-1)
    cfg = dataclasses.replace(TEXTS, text_k=2, text_temperature=0.01, text_key_dims=4, text_picture_dims=4)
    star_mean = torch.nn.functional.normalize(pictures[[0, 1, 3, 4]].mean(dim=0), dim=0)
    for tied in ("any", "mean"):
        mixes = []
        for order in (torch.arange(6), torch.tensor([5, 4, 3, 2, 1, 0]), torch.tensor([2, 4, 0, 5, 3, 1])):
            table = NeighbourPictures(4, 6, 6, 4, 4)
            table.fill(keys[order], key_picture[order], pictures)
            mixes.append(table.mix(query, cfg.text_k, cfg.text_temperature, tied))
        if tied == "mean":
            for mix in mixes:  # two tied keys among the top 2: each gives the mean of all four star pictures
                torch.testing.assert_close(mix[0], star_mean, atol=2e-2, rtol=0)
                torch.testing.assert_close(mix[1], pictures[2], atol=2e-2, rtol=0)  # "moon": one key, its own picture
        else:  # each tied key its own picture: two of the four, which two depends on the order
            assert all(float(mix[0] @ star_mean) < 0.99 for mix in mixes), mixes
    groups = KeyGroups.of(table.keys, table.key_scale)
    assert sorted(groups.size.tolist()) == [1, 1, 4]
    tied_keys, owner = groups.spread(torch.tensor([0, 1]))  # in the last table, key 0 is moon, key 1 is a star key
    assert owner.tolist() == [0, 1, 1, 1, 1] and tied_keys[:1].tolist() == [0]
    assert sorted(table.key_picture[tied_keys[1:]].tolist()) == [0, 1, 3, 4]
    # through a memory and a model: the setting is read at mix time, refused when misspelt, in the fingerprint
    memory = NeighbourCaptions(dataclasses.replace(cfg, text_tied_keys="mean"), in_channels=4, dim=4)
    memory.fill(torch.rand(6, 4), pictures)
    memory.fill_texts(keys, key_picture, pictures)
    moved = memory.on_text_rows(query, [0])
    expect = torch.nn.functional.normalize(query[0] + cfg.text_weight * star_mean, dim=0)
    torch.testing.assert_close(moved[0], expect, atol=2e-2, rtol=0)
    assert sorted(memory.texts.key_groups().size.tolist()) == [1, 1, 4]
    memory.fill_texts(keys + 0.1 * torch.eye(6, 4), key_picture, pictures)  # a new table, no ties: found again
    assert memory.texts.key_groups().size.tolist() == [1] * 6
    with pytest.raises(ValueError, match="text_tied_keys must be one of 'any', 'mean', got 'average'"):
        NeighbourCaptionsConfig(text_tied_keys="average")
    plain, mean = _model(TEXTS), _model(dataclasses.replace(TEXTS, text_tied_keys="mean"))
    assert "text_tied_keys" not in _fingerprint_config(plain)["neighbour_captions"]  # at "any": as before the field
    assert _fingerprint_config(mean)["neighbour_captions"]["text_tied_keys"] == "mean"


def test_built_from_the_run_texts_move_toward_their_pictures_and_the_label_table_stays_plain(swatches, tmp_path):
    model = _model(TEXTS)
    texts = ["a red square", "ein blaues Quadrat", "something else entirely"]
    plain_texts = model.encode_text(texts)
    build_neighbour_captions(model, _sources(swatches), seed=0)
    assert model.neighbour_captions.reads_texts and model.config.neighbour_captions.text_size == 24  # 8 x en, de, fr
    images = model.encode_image(swatch_images(swatches))  # documents, as the table holds them
    np.testing.assert_array_equal(model.encode_text(texts), plain_texts)  # texts against texts: untouched
    borrowed = model.encode_text(texts, against="images")
    assert not np.allclose(borrowed, plain_texts, atol=1e-3)
    with pytest.raises(EncodeInputError, match="against must be 'texts'.*got 'pictures'"):
        model.encode_text(texts, against="pictures")
    red = int(np.argmax(images @ borrowed[0]))
    assert float(images[red] @ borrowed[0]) > float(images[red] @ plain_texts[0])  # the query moved toward its picture
    from mmembed.neighbour_captions import paused_text_side

    with paused_text_side(model):
        np.testing.assert_array_equal(model.encode_text(texts, against="images"), plain_texts)  # plain, bit for bit
    np.testing.assert_allclose(model.encode_image(swatch_images(swatches)), images, atol=1e-6)  # images: not
    model.save(tmp_path / "saved")
    loaded = mmembed.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(loaded.encode_text(texts, against="images"), borrowed, atol=1e-6)
    assert model_fingerprint(loaded) == model_fingerprint(model)
    loaded.neighbour_captions.cfg.text_weight = 0.25  # the text weight changes stored text vectors
    assert model_fingerprint(loaded) != model_fingerprint(model)


def test_a_memory_without_a_text_side_keeps_its_earlier_fingerprint():
    model = _model(NeighbourCaptionsConfig())
    config = _fingerprint_config(model)["neighbour_captions"]
    assert not any(k.startswith("text_") for k in config)  # session 44's models: the section as it was then
    assert "text_weight" in _fingerprint_config(_model(TEXTS))["neighbour_captions"]


def test_a_label_prior_refresh_uses_the_plain_text_path():
    from mmembed.label_prior import imagenet_class_names, refresh_label_embeddings
    from mmembed.neighbour_captions import paused_text_side

    from mmembed.config import LabelPriorConfig

    config = mmembed.get_config("tiny-random")
    config.label_prior = LabelPriorConfig(weight=0.75, top_k=5)
    config.neighbour_captions = dataclasses.replace(TEXTS)
    model = MMEmbedModel(config)
    gen = torch.Generator().manual_seed(0)
    n = 6
    model.neighbour_captions.fill(torch.rand(n, tower_channels(model.image_tower), generator=gen),
                                  torch.rand(n, model.dim, generator=gen))
    model.neighbour_captions.fill_texts(torch.randn(3, model.dim, generator=gen), torch.tensor([0, 2, 5]),
                                        torch.randn(n, model.dim, generator=gen))
    refresh_label_embeddings(model)
    with paused_text_side(model):
        plain = model.encode_text(imagenet_class_names()[:50], as_tensor=True, against="images")
    torch.testing.assert_close(model.label_prior.label_embeddings[:50], plain.to(model.label_prior.label_embeddings.dtype))


def test_a_picture_table_is_dropped_by_a_fine_tune_of_the_image_side_and_refused_by_a_soup_across_image_sides(
        swatches, tmp_path, caplog):
    from mmembed.training.soup import SoupError, average_models

    base = _model(TEXTS)
    build_neighbour_captions(base, _sources(swatches), seed=0)
    base.save(tmp_path / "base")
    # only the projector trains (text side frozen): the table's image embeddings are the old image side's
    cfg = _recipe(swatches, tmp_path, tmp_path / "base", steps=1, freeze_lora=True, freeze_text_side=True)
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(cfg, progress=False)
        trainer.run()
        trainer.export(tmp_path / "export")
    assert "the pictures texts borrow (image embeddings of the old image side) are dropped" in caplog.text
    out = mmembed.load(str(tmp_path / "export")).neighbour_captions  # the look-alike memory itself still holds
    assert out is not None and out.texts is None and out.cfg.text_weight == 0 and out.size == len(SWATCHES)
    torch.testing.assert_close(out.values, base.neighbour_captions.values)
    other = mmembed.load(str(tmp_path / "base"))
    with torch.no_grad():
        other.projector.position.add_(0.01)  # another run's image side, the same memory
    other.save(tmp_path / "other")
    with pytest.raises(SoupError, match="differ in their image side"):
        average_models([tmp_path / "base", tmp_path / "other"], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_the_eval_embeds_texts_against_images_apart_from_texts_against_texts(swatches):
    from mmembed.evaluation.encoders import MMEmbedEncoder
    from mmembed.evaluation.runner import Embedder
    from mmembed.evaluation.tasks import Side

    model = _model(TEXTS)
    build_neighbour_captions(model, _sources(swatches), seed=0)
    embedder = Embedder(MMEmbedEncoder(model))
    side = Side("text", ("a red square", "ein blaues Quadrat"), ((), ()), "query")
    np.testing.assert_allclose(embedder.embed(side, against="image"),
                               model.encode_text(list(side.items), against="images"), atol=1e-6)
    np.testing.assert_allclose(embedder.embed(side), model.encode_text(list(side.items)), atol=1e-6)  # bitext: plain


def test_a_search_over_pictures_alone_embeds_its_text_query_against_images(swatches, tmp_path):
    from mmembed.search.collection import Collection
    from mmembed.search.documents import Document
    from mmembed.search.server import TextAgainstImages, make_encoder

    model = _model(TEXTS)
    build_neighbour_captions(model, _sources(swatches), seed=0)
    col = Collection(tmp_path / "col", model=model, appearance=False)
    col.add([Document(id=p.stem, kind="image", image=str(p)) for p in swatch_images(swatches)])
    assert col.texts_against() == "images"
    query = "ein rotes Quadrat"
    borrowed = model.encode_text([query], against="images")[0]
    hits = col.search(query, k=8)
    assert [h.document.id for h in hits] == [h.document.id for h in col.search_vector(borrowed, k=8)]
    np.testing.assert_allclose([h.score for h in hits], [h.score for h in col.search_vector(borrowed, k=8)], atol=1e-5)
    import httpx

    from mmembed.search.server import BackgroundServer, create_app
    from mmembed.search.server_inputs import ServerSettings

    with BackgroundServer(create_app(model, col, ServerSettings())) as url:  # /v1/search embeds it the same way
        r = httpx.post(url + "/v1/search", json={"query": query, "k": 8}, timeout=60)
        assert r.status_code == 200, r.text
        assert [d["id"] for d in r.json()["data"]] == [h.document.id for h in hits]
        np.testing.assert_allclose([d["score"] for d in r.json()["data"]], [h.score for h in hits], atol=1e-4)
    assert col.texts_against("text") == "texts"
    # the server's batcher embeds a TextAgainstImages item as Collection.search does, and a text sent on both sides
    # once through the backbone
    plain = model.encode_text([query])[0]
    encoded = make_encoder(model)([TextAgainstImages(query), query])
    np.testing.assert_allclose(encoded.vectors, np.stack([borrowed, plain]), atol=1e-6)
    assert encoded.tokens[0] == encoded.tokens[1]


def _mixed_collection(swatches, tmp_path, model):
    from mmembed.search.collection import Collection
    from mmembed.search.documents import Document

    col = Collection(tmp_path / "mixed", model=model, appearance=False)
    col.add([Document(id=p.stem, kind="image", image=str(p), language="en" if i % 2 else "de")
             for i, p in enumerate(swatch_images(swatches))])
    facing = col.texts_against()
    col.add([Document(id=f"note-{i}", kind="text", text=t, language="en") for i, t in enumerate(
        ["a note about squares", "ein rotes Quadrat", "blue things", "the colour green", "a red square",
         "nothing to do with colours"])])
    if facing != "texts":  # a model that borrows: the counts behind it follow every write
        assert facing == "images" and col.texts_against() == "both"
        col.delete([f"note-{i}" for i in range(6)])
        assert col.texts_against() == "images" and col.kind_counts() == (0, len(SWATCHES))
        col.upsert([Document(id=f"note-{i}", kind="text", text=t, language="en") for i, t in enumerate(
            ["a note about squares", "ein rotes Quadrat", "blue things", "the colour green", "a red square",
             "nothing to do with colours"])])
        assert col.kind_counts() == (6, len(SWATCHES))
    return col


@pytest.mark.parametrize("lexical_weight", [0.0, 0.3])
def test_a_text_query_in_a_collection_of_texts_and_pictures_ranks_each_kind_with_its_own_vector(
        swatches, tmp_path, lexical_weight):
    from mmembed.encoding import encode_text_both

    model = _model(TEXTS)
    build_neighbour_captions(model, _sources(swatches), seed=0)
    col = _mixed_collection(swatches, tmp_path, model)
    assert col.texts_against() == "both" and col.texts_against("image") == "images"
    assert col.texts_against("text") == "texts"
    query = "ein rotes Quadrat"
    plain, facing = (v[0] for v in encode_text_both(model, [query]))
    np.testing.assert_array_equal(facing, model.encode_text([query], against="images")[0])  # one pass, same vectors
    np.testing.assert_array_equal(plain, model.encode_text([query])[0])
    n = len(col)
    alone = col.search_vector(plain, k=n, text=query, lexical_weight=lexical_weight)  # the plain vector ranks all
    hits = col.search(query, k=n, lexical_weight=lexical_weight)
    assert len(hits) == n and [h.rank for h in hits] == list(range(1, n + 1))
    # texts keep their places; the places images hold go to the images in the order a search of images alone gives
    assert [h.document.kind for h in hits] == [h.document.kind for h in alone]
    assert [(h.rank, h.document.id, h.score) for h in hits if h.document.kind == "text"] == \
        [(h.rank, h.document.id, h.score) for h in alone if h.document.kind == "text"]
    images = col.search(query, k=n, kind="image", lexical_weight=lexical_weight)
    assert [h.document.id for h in hits if h.document.kind == "image"] == [h.document.id for h in images]
    np.testing.assert_allclose([h.score for h in hits if h.document.kind == "image"], [h.score for h in images],
                               atol=1e-5)  # an image's score: its cosine with the query against images
    assert [h.document.id for h in hits] != [h.document.id for h in alone]  # the borrowing changed the images' order
    # filters reach both sides: only German-labelled pictures and no text row answer language="de"
    de = col.search(query, k=n, language="de", lexical_weight=lexical_weight)
    assert {h.document.kind for h in de} == {"image"} and len(de) == sum(h.document.language == "de" for h in hits)
    # a glossed query (mmembed/glossary.py) is glossed on each side as it would be alone
    both = col.query_vectors("mbwa", query_lang="sw", gloss_weight=1.0, facing="both")
    np.testing.assert_allclose(both[0], col.query_vector("mbwa", "sw", 1.0, against="texts"), atol=1e-6)
    np.testing.assert_allclose(both[1], col.query_vector("mbwa", "sw", 1.0, against="images"), atol=1e-6)
    assert not np.allclose(both[0], both[1], atol=1e-3)
    # k cuts the merged order
    assert [h.document.id for h in col.search(query, k=3, lexical_weight=lexical_weight)] == \
        [h.document.id for h in hits[:3]]


def test_a_model_that_borrows_nothing_searches_a_mixed_collection_with_one_vector(swatches, tmp_path):
    model = _model(MEMORY)  # a memory without a picture table: texts borrow nothing
    build_neighbour_captions(model, _sources(swatches), seed=0)
    col = _mixed_collection(swatches, tmp_path, model)
    assert col.texts_against() == "texts"
    query = "ein rotes Quadrat"
    plain = model.encode_text([query])[0]
    assert [h.document.id for h in col.search(query, k=9)] == [h.document.id for h in col.search_vector(plain, k=9)]


def test_the_server_searches_a_mixed_collection_and_embeds_texts_against_images_on_request(swatches, tmp_path):
    import base64

    import httpx

    from mmembed.search.server import BackgroundServer, create_app
    from mmembed.search.server_inputs import ServerSettings

    model = _model(TEXTS)
    build_neighbour_captions(model, _sources(swatches), seed=0)
    col = _mixed_collection(swatches, tmp_path, model)
    query = "ein rotes Quadrat"
    hits = col.search(query, k=10)
    with BackgroundServer(create_app(model, col, ServerSettings())) as url:
        r = httpx.post(url + "/v1/search", json={"query": query, "k": 10}, timeout=60)
        assert r.status_code == 200, r.text
        assert [d["id"] for d in r.json()["data"]] == [h.document.id for h in hits]
        np.testing.assert_allclose([d["score"] for d in r.json()["data"]], [h.score for h in hits], atol=1e-4)
        glossed = col.search("mbwa", k=10, query_lang="sw")
        r = httpx.post(url + "/v1/search", json={"query": "mbwa", "k": 10, "query_lang": "sw"}, timeout=60)
        assert [d["id"] for d in r.json()["data"]] == [h.document.id for h in glossed]
        np.testing.assert_allclose([d["score"] for d in r.json()["data"]], [h.score for h in glossed], atol=1e-4)
        texts = ["a red square", "ein blaues Quadrat"]
        got = {}
        for against in ("texts", "images"):
            r = httpx.post(url + "/v1/embeddings", json={"input": texts, "against": against}, timeout=60)
            assert r.status_code == 200, r.text
            got[against] = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
        r = httpx.post(url + "/v1/embeddings", json={"input": texts, "against": "pictures"}, timeout=60)
        assert r.status_code == 422 and r.json()["error"]["param"] == "against", r.text
        # an image input is unaffected by `against`
        png = swatch_images(swatches)[0].read_bytes()
        image_url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        pair = [httpx.post(url + "/v1/embeddings", json={"input": [image_url], "against": a}, timeout=60).json()
                for a in ("texts", "images")]
    np.testing.assert_allclose(got["texts"], model.encode_text(texts), atol=1e-5)
    np.testing.assert_allclose(got["images"], model.encode_text(texts, against="images"), atol=1e-5)
    assert not np.allclose(got["texts"], got["images"], atol=1e-3)
    assert pair[0]["data"][0]["embedding"] == pair[1]["data"][0]["embedding"]


def test_a_two_sided_search_refuses_a_bad_image_vector_and_an_empty_collection_answers_nothing(swatches, tmp_path):
    from mmembed.search.collection import Collection
    from mmembed.search.info import ModelMismatchError

    model = _model(TEXTS)
    build_neighbour_captions(model, _sources(swatches), seed=0)
    empty = Collection(tmp_path / "empty", model=model, appearance=False)
    assert empty.search_vector(np.ones(3, np.float32), k=3, image_vector=np.ones(5, np.float32)) == []
    col = _mixed_collection(swatches, tmp_path, model)
    plain = model.encode_text(["a red square"])[0]
    with pytest.raises(ModelMismatchError, match="image_vector has 3 dims"):
        col.search_vector(plain, k=3, image_vector=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="image_vector contains NaN"):
        col.search_vector(plain, k=3, image_vector=np.full(model.dim, np.nan, np.float32))
    with pytest.raises(ValueError, match="an image query"):
        col.search_vector(plain, k=3, image_vector=plain, appearance=np.ones(4, np.float32))
