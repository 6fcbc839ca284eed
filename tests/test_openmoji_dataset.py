"""The OpenMoji dataset: the rules on a small fake npm package (real CLDR), then the real package (both installed by
scripts/system-deps.sh: unicode-cldr-core, and `npm install -g openmoji@17.0.0`)."""
from __future__ import annotations

import csv
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmembed.data.builders import MissingSourceError, build_dataset, sources
from mmembed.data.builders.concepts import assign_split
from mmembed.data.builders.openmoji import names_held_out
from mmembed.data.manifest import SPLITS, read_manifest

COLUMNS = ["emoji", "hexcode", "group", "subgroups", "annotation", "tags", "openmoji_tags", "openmoji_author",
           "openmoji_date", "skintone", "skintone_combination", "skintone_base_emoji", "skintone_base_hexcode",
           "unicode", "order"]
# (emoji, hexcode, group, annotation, tags, openmoji_tags, skintone, draw?)
ROWS = [
    ("\U0001F408", "1F408", "animals-nature", "cat", "cat, pet", "", "", True),  # a held-out (test) emoji
    ("\U0001F34E", "1F34E", "food-drink", "red apple", "apple, fruit, red", "", "", True),  # a train emoji
    ("", "E000", "extras-openmoji", "goldfish", "", "goldfish, fish, water", "", True),  # a train extra
    ("", "E007", "extras-openmoji", "hacker", "", "computer", "", True),  # a test extra
    ("", "E002", "extras-openmoji", "hacker cat", "", "cat, computer", "", True),  # train, names held-out 'cat'
    ("\U0001F44D\U0001F3FB", "1F44D-1F3FB", "people-body", "thumbs up: light skin tone", "", "", "1F3FB", True),
    ("", "E003", "extras-openmoji", "doe", "", "deer", "", False),  # its SVG is missing
    ("", "E004", "extras-openmoji", "kite", "", "toy", "", True),  # its SVG is damaged
]


def _svg(colour: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 72 72'><circle cx='36' cy='36' r='24' "
            f"fill='{colour}' stroke='#000000' stroke-width='2'/></svg>")


def fake_package(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "color" / "svg").mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": "openmoji", "version": "17.0.0"}), encoding="utf-8")
    with open(root / "data" / "openmoji.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for emoji, hexcode, group, annotation, tags, om_tags, tone, draw in ROWS:
            w.writerow({"emoji": emoji, "hexcode": hexcode, "group": group, "annotation": annotation, "tags": tags,
                        "openmoji_tags": om_tags, "skintone": tone})
            if draw:
                svg = _svg("#f4aa41") if hexcode != "E004" else "<svg xmlns='http://www.w3.org/2000/svg'"
                (root / "color" / "svg" / f"{hexcode}.svg").write_text(svg, encoding="utf-8")
    return root


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    folder = fake_package(tmp_path / "openmoji")
    monkeypatch.setattr(sources, "OPENMOJI", dataclasses.replace(sources.OPENMOJI, folder=folder))
    return folder


def _by_concept(out: Path) -> dict[str, list]:
    recs = defaultdict(list)
    for split in SPLITS:
        for r in read_manifest(out / f"{split}.jsonl"):
            assert r.split == split
            recs[r.concept].append(r)
    return recs


def test_emoji_keep_the_emoji_datasets_id_split_and_cldr_captions_and_extras_get_english_names(fake, tmp_path):
    out = build_dataset("openmoji", tmp_path / "out", langs="en,de,hi")
    recs = _by_concept(out)
    assert set(recs) == {"emoji:1f408", "emoji:1f34e", "openmoji:e000", "openmoji:e007"}
    # the held-out cat is held out here too: neither drawing of it is in train
    assert {r.split for r in recs["emoji:1f408"]} == {assign_split("emoji:1f408")} == {"test"}
    assert {r.split for r in recs["emoji:1f34e"]} == {"train"}
    cat = {(r.lang, r.kind, r.caption) for r in recs["emoji:1f408"]}
    assert ("en", "name", "cat") in cat and {"de", "hi"} <= {lang for lang, _, _ in cat}  # CLDR's, in every locale
    goldfish = {(r.lang, r.kind, r.caption) for r in recs["openmoji:e000"]}
    assert goldfish == {("en", "name", "goldfish"), ("en", "keyword", "fish"), ("en", "keyword", "water")}
    assert {r.split for r in recs["openmoji:e007"]} == {"test"}
    card = json.loads((out / "card.json").read_text())
    assert card["stats"]["names_a_held_out_emoji"] == {"hacker cat": "cat"}  # train extra naming a test emoji: dropped
    assert card["stats"]["skin_tone_variants_skipped"] == 1 and card["stats"]["no_svg"] == 1
    assert card["stats"]["unrenderable"] == ["E004"]  # a damaged SVG is skipped and named, not a crash
    assert (card["stats"]["emoji"], card["stats"]["extra_icons"]) == (2, 2)
    assert {s["package"]: s["ecosystem"] for s in card["sources"]}["openmoji"] == "npm"
    images = {r.image for rs in recs.values() for r in rs}
    assert images == {"images/1f408.png", "images/1f34e.png", "images/e000.png", "images/e007.png"}
    for rel in images:
        with Image.open(out / rel) as im:
            assert im.mode == "RGB" and im.size == (160, 160)
            px = np.asarray(im)
        assert (px[0, 0] == 255).all() and (px[80, 80] == (0xF4, 0xAA, 0x41)).all()  # drawn, centred, on white
    assert not (out / "images" / "e002.png").exists()  # a dropped concept leaves no picture behind


def test_without_english_the_extras_have_no_caption_and_are_left_out(fake, tmp_path):
    out = build_dataset("openmoji", tmp_path / "out", langs="de", limit=10)
    recs = _by_concept(out)
    assert set(recs) == {"emoji:1f408", "emoji:1f34e"}
    assert {r.lang for rs in recs.values() for r in rs} == {"de"}
    assert json.loads((out / "card.json").read_text())["stats"]["no_caption"] == 3  # goldfish, kite, hacker


def test_names_held_out_matches_whole_words_only():
    held = [" cat ", " red apple "]
    assert names_held_out("hacker cat", held) == "cat"
    assert names_held_out("Red Apple!", held) == "red apple"
    assert names_held_out("category", held) is None and names_held_out("apple", held) is None


def test_a_missing_package_or_renderer_names_what_to_install(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(sources, "OPENMOJI", dataclasses.replace(sources.OPENMOJI, folder=tmp_path / "nowhere"))
    with pytest.raises(MissingSourceError, match=r"npm install -g openmoji@17\.0\.0"):
        build_dataset("openmoji", tmp_path / "a")
    assert not (tmp_path / "a").exists()
    monkeypatch.setattr(sources, "OPENMOJI", dataclasses.replace(sources.OPENMOJI, folder=fake))
    monkeypatch.setattr(sources, "RESVG", dataclasses.replace(sources.RESVG, module="no_such_resvg_module"))
    with pytest.raises(MissingSourceError, match="pip install resvg-py"):
        build_dataset("openmoji", tmp_path / "b")


def test_a_table_of_another_layout_is_refused_with_its_path(fake, tmp_path):
    table = fake / "data" / "openmoji.csv"
    table.write_text("emoji,hexcode\n\U0001F408,1F408\n", encoding="utf-8")
    with pytest.raises(MissingSourceError, match=r"openmoji\.csv has no column\(s\) annotation, group"):
        build_dataset("openmoji", tmp_path / "out")


def test_the_real_package_draws_emoji_in_the_emoji_datasets_splits(tmp_path):
    out = build_dataset("openmoji", tmp_path / "real", limit=30, langs="en,sw")
    recs = _by_concept(out)
    assert len(recs) == 30
    card = json.loads((out / "card.json").read_text())
    assert {s["package"]: s["version"] for s in card["sources"]}["openmoji"] == "17.0.0"
    emoji = [c for c in recs if c.startswith("emoji:")]
    assert len(emoji) >= 15  # most of OpenMoji is Unicode emoji
    assert all({r.split for r in recs[c]} == {assign_split(c)} for c in recs)
    for concept in emoji[:5]:
        (rel,) = {r.image for r in recs[concept]}
        with Image.open(out / rel) as im:
            px = np.asarray(im.convert("RGB"), dtype=np.int16)
        assert px.min() < 60 and (px.max(axis=2) - px.min(axis=2)).max() > 60  # black outlines and colour
