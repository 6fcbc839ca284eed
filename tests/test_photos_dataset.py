"""The eval-only `photos` dataset on the real installed sources (scikit-image, scikit-learn, CLDR)."""
from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from mmembed.data.builders import DATASETS, MissingSourceError, build_dataset, photos, sources
from mmembed.data.builders.cldr import Annotation
from mmembed.data.manifest import read_manifest
from mmembed.evaluation.data import find_datasets

LANGS = ["en", "de", "zh", "hi", "sw"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The full photo set built twice with the same options (five locales keep it fast)."""
    root = tmp_path_factory.mktemp("photos")
    return build_dataset("photos", root / "a", langs=LANGS), build_dataset("photos", root / "b", langs=LANGS)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_registered_and_rebuild_is_byte_identical(built):
    assert "photos" in DATASETS and "EVAL ONLY" in DATASETS["photos"].description
    a, b = built
    assert _tree(a) == _tree(b)
    assert len(list((a / "images").iterdir())) == len(photos.PHOTOS) >= 8


def test_every_record_is_test_split_and_eval_reads_it(built):
    folder = built[0]
    assert read_manifest(folder / "train.jsonl") == [] and read_manifest(folder / "dev.jsonl") == []
    records = read_manifest(folder / "test.jsonl")
    assert records and {r.split for r in records} == {"test"}
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert card["counts"]["records"] == {"train": 0, "dev": 0, "test": len(records), "total": len(records)}
    assert card["counts"]["concepts"]["test"] == len(photos.PHOTOS)
    assert all(s["version"] != "unknown" for s in card["sources"]), card["sources"]
    (ds,) = find_datasets(folder, "test")
    assert len(ds.concepts) == len(photos.PHOTOS)


def test_images_open_as_rgb_photos(built):
    folder = built[0]
    for record in read_manifest(folder / "test.jsonl"):
        assert record.image == f"images/{record.concept.split(':', 1)[1]}.png"
    for path in sorted((folder / "images").iterdir()):
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB", path
            assert min(im.size) >= 256, (path, im.size)  # real photos, not thumbnails


def test_every_photo_has_a_name_in_each_language(built):
    names: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in read_manifest(built[0] / "test.jsonl"):
        if r.kind == "name":
            names[r.concept][r.lang].append(r.caption)
    assert set(names) == {photos.concept_id(p) for p in photos.PHOTOS}
    for concept, by_lang in names.items():
        assert sorted(by_lang) == sorted(LANGS), concept
    assert "cat" in names["photo:chelsea"]["en"] and "Katze" in names["photo:chelsea"]["de"]
    assert names["photo:coffee"]["zh"] == ["热饮"] and names["photo:rocket"]["sw"] == ["roketi"]
    kinds = {r.kind for r in read_manifest(built[0] / "test.jsonl")}
    assert kinds == {"name", "keyword"}


def test_record_license_is_the_photos_own(built):
    by_concept = {r.concept: r.license for r in read_manifest(built[0] / "test.jsonl")}
    assert by_concept["photo:flower"].startswith("CC-BY-2.0") and "CLDR" in by_concept["photo:flower"]
    assert by_concept["photo:chelsea"].startswith("CC0")


def test_limit_and_langs(tmp_path):
    out = build_dataset("photos", tmp_path / "small", limit=3, langs="en,sw")
    records = read_manifest(out / "test.jsonl")
    assert len({r.concept for r in records}) == 3 and {r.lang for r in records} == {"en", "sw"}
    assert len(list((out / "images").iterdir())) == 3
    again = build_dataset("photos", tmp_path / "again", limit=3, langs=["sw", "en"])
    assert {r.concept for r in read_manifest(again / "test.jsonl")} == {r.concept for r in records}
    with pytest.raises(ValueError, match="no CLDR annotation locale"):
        build_dataset("photos", tmp_path / "none", langs="xx_NOPE")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("attr,hint", [("SKIMAGE", "pip install scikit-image"),
                                       ("SKLEARN", "pip install scikit-learn")])
def test_missing_package_names_it(tmp_path, monkeypatch, attr, hint):
    missing = dataclasses.replace(getattr(sources, attr), module="mmembed_no_such_module")
    key = "skimage" if attr == "SKIMAGE" else "sklearn"
    monkeypatch.setitem(photos.PACKAGES, key, missing)
    with pytest.raises(MissingSourceError, match=re.escape(hint)):
        build_dataset("photos", tmp_path / "out", langs="en")
    assert not (tmp_path / "out").exists()


def test_a_photo_missing_from_the_wheel_names_file_and_package(tmp_path, monkeypatch):
    gone = dataclasses.replace(photos.PHOTOS[0], path="data/no_such_photo.png")
    monkeypatch.setattr(photos, "PHOTOS", (gone,) + photos.PHOTOS[1:])
    with pytest.raises(MissingSourceError, match=r"no_such_photo\.png.*pip install scikit-image"):
        build_dataset("photos", tmp_path / "out", langs="en")


def test_mapping_is_checked_against_cldr_english_names():
    photo = photos.PHOTOS[0]
    good = {cp: Annotation(cp, name, ()) for cp, name in zip(photo.emoji, photo.english)}
    photos._check_mapping([photo], good)
    wrong = dict(good) | {photo.emoji[0]: Annotation(photo.emoji[0], "something else", ())}
    with pytest.raises(ValueError, match=f"photo {photo.stem!r}.*'something else'"):
        photos._check_mapping([photo], wrong)
    assert all("\ufe0f" not in cp for p in photos.PHOTOS for cp in p.emoji)  # CLDR keys have no U+FE0F
