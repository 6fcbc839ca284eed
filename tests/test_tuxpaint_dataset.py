"""The Tux Paint stamps dataset: parsing rules on a small fake stamp tree, then the real package."""
from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from mmembed.data.builders import DATASETS, MissingSourceError, build_dataset, sources, tuxpaint
from mmembed.data.manifest import SPLITS, read_manifest
from mmembed.evaluation.data import find_datasets


def _stamp(root: Path, rel: str, text: str, image: str = "png", rgba=(200, 30, 30, 255)) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".txt").write_text(text, encoding="utf-8")
    if image == "png":
        im = Image.new("RGBA", (300, 200), (0, 0, 0, 0))  # transparent, as the stamps are
        im.paste(Image.new("RGBA", (100, 100), rgba), (100, 50))
        im.save(path.with_suffix(".png"))
    elif image == "svg":
        path.with_suffix(".svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>", encoding="utf-8")


@pytest.fixture()
def fake_stamps(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "stamps"
    _stamp(root, "animals/badger", "A badger.\nde.utf8=Ein Dachs.\nzh_CN.utf8=一只獾。\nhi.utf8=बिज्जू|\n"
                                   "sw.utf8=A badger.\nen_GB.utf8=A badger.\n\nnot a translation line\n")
    _stamp(root, "food/apple", "An apple.\nde.utf8=Ein   Apfel.\nzh_TW.utf8=蘋果。\n"
                               "ta.utf8=´Õ ¬ôÀ¢û.\nta.utf8=ஓர் ஆப்பிள்.\nfa.utf8=dfn.\n", rgba=(20, 160, 20, 255))
    _stamp(root, "food/apple_copy", "An Apple.\nde.utf8=Noch ein Apfel.\n")  # repeats 'An apple'
    _stamp(root, "symbols/alphabets/english/a", "The letter A.\nde.utf8=Der Buchstabe A.\n")
    _stamp(root, "town/house", "A house.\nde.utf8=Ein Haus.\n", image="svg")
    _stamp(root, "town/ghost", "A ghost.\n", image="none")
    _stamp(root, "town/blank", "\nde.utf8=Leer.\n")
    monkeypatch.setattr(sources, "TUXPAINT_STAMPS", dataclasses.replace(sources.TUXPAINT_STAMPS, path=root))
    return root


def test_description_file_parsing(fake_stamps):
    english, pairs, odd = tuxpaint.read_description(fake_stamps / "animals/badger.txt")
    assert english == "A badger"  # one trailing sentence end goes
    assert pairs[:3] == [("de", "Ein Dachs"), ("zh", "一只獾"), ("hi", "बिज्जू")]  # zh_CN -> zh, '|' danda
    assert odd == [8]  # line numbers of what is neither English nor a translation
    assert tuxpaint.clean("  Ein   Apfel. ") == "Ein Apfel"


def test_fake_build_keeps_one_stamp_per_description_and_reports_the_rest(fake_stamps, tmp_path):
    out = build_dataset("tuxpaint", tmp_path / "tux")
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    records = [r for s in SPLITS for r in read_manifest(out / f"{s}.jsonl")]
    concepts = {r.concept for r in records}
    assert concepts == {"tuxpaint:animals/badger", "tuxpaint:food/apple"}
    assert card["stats"]["skipped"] == {"excluded_folder": 1, "svg_only": 1, "no_image": 1,
                                        "no_english_description": 1, "unparsed_lines": 1}
    assert card["stats"]["duplicate_descriptions_dropped"] == ["food/apple_copy"]
    assert card["stats"]["untranslated_copies"] == {"sw": 1}  # the Swahili line was English
    # Tamil in the TSCII font encoding read as Latin-1, Persian typed on a Latin keyboard: dropped
    assert card["stats"]["wrong_script"] == {"fa": 1, "ta": 1}
    by = defaultdict(dict)
    for r in records:
        by[r.concept][r.lang] = r.caption
        assert r.license == tuxpaint.LICENSE and r.kind == "description" and r.split in SPLITS
    assert by["tuxpaint:animals/badger"] == {"en": "A badger", "de": "Ein Dachs", "zh": "一只獾", "hi": "बिज्जू",
                                             "en_GB": "A badger"}
    assert by["tuxpaint:food/apple"] == {"en": "An apple", "de": "Ein Apfel", "zh_Hant": "蘋果", "ta": "ஓர் ஆப்பிள்"}
    im = Image.open(out / "images/animals/badger.png")
    assert im.mode == "RGB" and max(im.size) == 224 and im.getpixel((0, 0)) == (255, 255, 255)  # on white


def test_fake_build_langs_limit_and_no_match(fake_stamps, tmp_path):
    out = build_dataset("tuxpaint", tmp_path / "de", langs="de", limit=1)
    records = [r for s in SPLITS for r in read_manifest(out / f"{s}.jsonl")]
    assert len({r.concept for r in records}) == 1 and {r.lang for r in records} == {"de"}
    with pytest.raises(ValueError, match=r"no caption .* langs=\['xx'\]"):
        build_dataset("tuxpaint", tmp_path / "none", langs="xx")
    assert not (tmp_path / "none").exists()  # nothing half-written


def test_missing_package_names_it(tmp_path, monkeypatch):
    gone = dataclasses.replace(sources.TUXPAINT_STAMPS, path=tmp_path / "no_stamps")
    monkeypatch.setattr(sources, "TUXPAINT_STAMPS", gone)
    with pytest.raises(MissingSourceError, match=re.escape("apt-get install tuxpaint-stamps-default")):
        build_dataset("tuxpaint", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tux")
    langs = ["en", "de", "zh", "hi", "sw", "ar"]
    return build_dataset("tuxpaint", root / "a", langs=langs), build_dataset("tuxpaint", root / "b", langs=langs)


def test_real_package_builds_deterministically_with_concept_splits(real):
    a, b = real
    tree = lambda f: {p.relative_to(f).as_posix(): p.read_bytes() for p in sorted(f.rglob("*")) if p.is_file()}
    assert tree(a) == tree(b)
    card = json.loads((a / "card.json").read_text(encoding="utf-8"))
    assert card["sources"][0]["package"] == "tuxpaint-stamps-default"
    counts = card["counts"]["concepts"]
    assert counts["total"] >= 500 and counts["test"] >= 40 and counts["dev"] >= 40
    split_of = {}
    english = defaultdict(set)
    for s in SPLITS:
        for r in read_manifest(a / f"{s}.jsonl"):
            assert split_of.setdefault(r.concept, s) == s  # every caption of a concept in one split
            if r.lang == "en":
                english[r.caption.casefold()].add(r.concept)
    assert all(len(c) == 1 for c in english.values())  # no English description on two images
    per_lang = card["counts"]["per_language"]
    assert per_lang["de"]["test"] >= 40 and per_lang["hi"]["test"] >= 40 and per_lang["sw"]["total"] >= 100
    ds = {d.name: d for d in find_datasets(a, "test")}
    assert len(ds) == 1 and len(next(iter(ds.values())).concepts) == counts["test"]


def test_registered():
    assert "tuxpaint" in DATASETS and "translated" in DATASETS["tuxpaint"].description
