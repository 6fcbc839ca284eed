"""The eval-only photo sets on the real installed sources: `photos` (scikit-image, scikit-learn)
and `debian-photos` (scratch, palapeli-data), both captioned from CLDR. Every test runs on both."""
from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from mmembed.data.builders import DATASETS, MissingSourceError, build_dataset, debian_photos, photo_set, photos, sources
from mmembed.data.builders.cldr import Annotation
from mmembed.data.manifest import read_manifest
from mmembed.evaluation.data import find_datasets

LANGS = ["en", "de", "zh", "hi", "sw"]
SETS = {"photos": photos, "debian-photos": debian_photos}
# per set: (package key, source whose `require` fails when it is missing, the hint the error must give)
MISSING = [("photos", "skimage", "pip install scikit-image"), ("photos", "sklearn", "pip install scikit-learn"),
           ("debian-photos", "scratch", "apt-get install scratch"),
           ("debian-photos", "palapeli", "apt-get install palapeli-data")]
# per set: (concept stem, lang, a name CLDR gives it) and (stem, the start of its record license)
NAMES = {"photos": [("chelsea", "en", "cat"), ("chelsea", "de", "Katze"), ("coffee", "zh", "热饮"),
                    ("rocket", "sw", "roketi")],
         "debian-photos": [("honeybee", "en", "honeybee"), ("honeybee", "sw", "nyuki"), ("castle", "de", "Schloss"),
                           ("wave", "hi", "समुद्र की लहर")]}
LICENSES = {"photos": [("flower", "CC-BY-2.0"), ("chelsea", "CC0")],
            "debian-photos": [("wave", "CC-BY-SA-3.0"), ("bridge", "public domain"), ("castle", "GFDL")]}


@pytest.fixture(scope="module", params=sorted(SETS))
def built(request, tmp_path_factory) -> tuple[str, ModuleType, Path, Path]:
    """A full photo set built twice with the same options (five locales keep it fast)."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    return (name, SETS[name], build_dataset(name, root / "a", langs=LANGS),
            build_dataset(name, root / "b", langs=LANGS))


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _id(module: ModuleType, stem: str) -> str:
    return module.photo_set().concept_id(next(p for p in module.PHOTOS if p.stem == stem))


def test_registered_and_rebuild_is_byte_identical(built):
    name, module, a, b = built
    assert name in DATASETS and "EVAL ONLY" in DATASETS[name].description
    assert _tree(a) == _tree(b)
    assert len(list((a / "images").iterdir())) == len(module.PHOTOS) >= 8


def test_every_record_is_test_split_and_eval_reads_it(built):
    _, module, folder, _ = built
    assert read_manifest(folder / "train.jsonl") == [] and read_manifest(folder / "dev.jsonl") == []
    records = read_manifest(folder / "test.jsonl")
    assert records and {r.split for r in records} == {"test"}
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    assert card["counts"]["records"] == {"train": 0, "dev": 0, "test": len(records), "total": len(records)}
    assert card["counts"]["concepts"]["test"] == len(module.PHOTOS)
    assert all(s["version"] != "unknown" for s in card["sources"]), card["sources"]
    (ds,) = find_datasets(folder, "test")
    assert len(ds.concepts) == len(module.PHOTOS)


def test_images_open_as_rgb_photos(built):
    _, _, folder, _ = built
    for record in read_manifest(folder / "test.jsonl"):
        assert record.image == f"images/{record.concept.split(':', 1)[1]}.png"
    for path in sorted((folder / "images").iterdir()):
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB", path
            assert min(im.size) >= 256, (path, im.size)  # real photos, not thumbnails


def test_every_photo_has_a_name_in_each_language(built):
    name, module, folder, _ = built
    names: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in read_manifest(folder / "test.jsonl"):
        if r.kind == "name":
            names[r.concept][r.lang].append(r.caption)
    assert set(names) == {module.photo_set().concept_id(p) for p in module.PHOTOS}
    for concept, by_lang in names.items():
        assert sorted(by_lang) == sorted(LANGS), concept
    for stem, lang, caption in NAMES[name]:
        assert caption in names[_id(module, stem)][lang], (stem, lang, names[_id(module, stem)][lang])
    assert {r.kind for r in read_manifest(folder / "test.jsonl")} == {"name", "keyword"}


def test_record_license_is_the_photos_own(built):
    name, module, folder, _ = built
    by_concept = {r.concept: r.license for r in read_manifest(folder / "test.jsonl")}
    for stem, start in LICENSES[name]:
        assert by_concept[_id(module, stem)].startswith(start) and "CLDR" in by_concept[_id(module, stem)]


@pytest.mark.parametrize("name", sorted(SETS))
def test_limit_and_langs(tmp_path, name):
    out = build_dataset(name, tmp_path / "small", limit=3, langs="en,sw")
    records = read_manifest(out / "test.jsonl")
    assert len({r.concept for r in records}) == 3 and {r.lang for r in records} == {"en", "sw"}
    assert len(list((out / "images").iterdir())) == 3
    again = build_dataset(name, tmp_path / "again", limit=3, langs=["sw", "en"])
    assert {r.concept for r in read_manifest(again / "test.jsonl")} == {r.concept for r in records}
    with pytest.raises(ValueError, match="no CLDR annotation locale"):
        build_dataset(name, tmp_path / "none", langs="xx_NOPE")
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("name,key,hint", MISSING)
def test_missing_package_names_it(tmp_path, monkeypatch, name, key, hint):
    module = SETS[name]
    source = module.PACKAGES[key]
    if isinstance(source, sources.PypiSource):
        missing = dataclasses.replace(source, module="mmembed_no_such_module")
    else:
        missing = dataclasses.replace(source, path=tmp_path / "no_such_folder")
    monkeypatch.setitem(module.PACKAGES, key, missing)
    with pytest.raises(MissingSourceError, match=re.escape(hint)):
        build_dataset(name, tmp_path / "out", langs="en")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,hint", [("photos", r"pip install scikit-image"),
                                       ("debian-photos", r"apt-get install scratch")])
def test_a_photo_missing_from_its_package_names_file_and_package(tmp_path, monkeypatch, name, hint):
    module = SETS[name]
    gone = dataclasses.replace(module.PHOTOS[0], path="no_such_photo.png")
    monkeypatch.setattr(module, "PHOTOS", (gone,) + module.PHOTOS[1:])
    with pytest.raises(MissingSourceError, match=rf"no_such_photo\.png.*{hint}"):
        build_dataset(name, tmp_path / "out", langs="en")
    assert not (tmp_path / "out").exists()


def test_mapping_is_checked_against_cldr_english_names():
    photo = photos.PHOTOS[0]
    good = {cp: Annotation(cp, name, ()) for cp, name in zip(photo.emoji, photo.english)}
    photo_set.check_mapping([photo], good)
    wrong = dict(good) | {photo.emoji[0]: Annotation(photo.emoji[0], "something else", ())}
    with pytest.raises(ValueError, match=f"photo {photo.stem!r}.*'something else'"):
        photo_set.check_mapping([photo], wrong)
    twin = dataclasses.replace(photo, stem="twin")
    with pytest.raises(ValueError, match=f"photo 'twin': emoji .* already captions photo {photo.stem!r}"):
        photo_set.check_mapping([photo, twin], good)


def test_no_emoji_captions_two_photos_in_either_set():
    emoji = [cp for module in SETS.values() for p in module.PHOTOS for cp in p.emoji]
    assert len(emoji) == len(set(emoji))  # across the sets too: each set measures different concepts
    assert all("\ufe0f" not in cp for cp in emoji)  # CLDR keys have no U+FE0F
