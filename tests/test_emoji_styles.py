"""The eval-only emoji-styles dataset (Noto colour + Symbola outline drawings of held-out emoji) and the i2i task on it.
Needs fonts-noto-color-emoji, fonts-symbola and unicode-cldr-core (scripts/system-deps.sh)."""
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from mmembed.data.builders import build_dataset
from mmembed.data.builders.concepts import assign_split
from mmembed.data.builders.emoji_styles import OutlineFont, single_code_point
from mmembed.data.builders.sources import SYMBOLA
from mmembed.data.manifest import read_manifest
from mmembed.evaluation.data import find_datasets
from mmembed.evaluation.metrics import relevance_from_keys
from mmembed.evaluation.tasks import build_tasks

LIMIT = 16


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    return build_dataset("emoji-styles", tmp_path_factory.mktemp("styles") / "a", limit=LIMIT, langs="en,hi,sw")


def _records(folder):
    return {split: list(read_manifest(folder / f"{split}.jsonl")) for split in ("train", "dev", "test")}


def test_only_held_out_emoji_each_drawn_twice_with_the_same_captions(styles):
    recs = _records(styles)
    assert recs["train"] == []  # eval only: no emoji any model trained on
    held_out = recs["dev"] + recs["test"]
    assert all(r.split == assign_split(r.concept) for r in held_out)  # the emoji dataset's split of that emoji
    images, captions = defaultdict(list), defaultdict(set)
    for r in held_out:
        if r.image not in images[r.concept]:
            images[r.concept].append(r.image)
        captions[r.concept, r.image.split("/")[0]].add((r.lang, r.kind, r.caption))
    assert len(images) == LIMIT
    for concept, paths in images.items():
        hexname = concept.split(":", 1)[1]
        assert paths == [f"color/{hexname}.png", f"outline/{hexname}.png"]  # colour first: i2i's reference
        assert captions[concept, "color"] == captions[concept, "outline"]
        assert {lang for lang, _, _ in captions[concept, "color"]} >= {"en"}


def test_outline_drawings_are_black_on_white_and_colour_ones_are_not(styles):
    recs = _records(styles)
    paths = sorted({r.image for r in recs["dev"] + recs["test"]})
    greys = {}
    for rel in paths:
        with Image.open(styles / rel) as im:
            assert im.mode == "RGB" and im.size == (160, 160)
            px = np.asarray(im, dtype=np.int16)
        assert px.min() < 100 and px.max() == 255  # something drawn on white
        greys[rel] = bool((px.max(axis=2) - px.min(axis=2)).max() <= 8)  # no colour: r = g = b
    assert all(grey for rel, grey in greys.items() if rel.startswith("outline/"))
    assert not all(grey for rel, grey in greys.items() if rel.startswith("color/"))


def test_the_build_is_deterministic(styles, tmp_path):
    again = build_dataset("emoji-styles", tmp_path / "b", limit=LIMIT, langs="en,hi,sw")
    for split in ("dev", "test"):
        assert (styles / f"{split}.jsonl").read_bytes() == (again / f"{split}.jsonl").read_bytes()
    for rel in sorted(p.relative_to(styles) for p in styles.rglob("*.png")):
        assert (styles / rel).read_bytes() == (again / rel).read_bytes()


def test_glyph_checks():
    assert single_code_point("\u2764\ufe0f") == "\u2764"  # the variation selector does not count
    assert single_code_point("\U0001f1e9\U0001f1ea") is None  # a flag: two regional indicators
    font = OutlineFont(SYMBOLA.require(), 109)
    assert font.has_glyph("\U0001f408")  # cat
    assert not font.has_glyph("\U0001fae0")  # melting face (Unicode 14): not in Symbola


def test_i2i_on_emoji_styles_asks_for_the_colour_emoji_of_each_outline(styles):
    (ds,) = find_datasets(styles, split="test")
    (task,) = build_tasks(["i2i"], [ds])[0]
    assert all("/outline/" in q for q in task.queries.items)
    assert all("/color/" in t for t in task.targets.items)
    assert len(task.queries) == len(task.targets) >= 2
    assert relevance_from_keys(task.queries.keys, task.targets.keys).sum(axis=1).tolist() == [1] * len(task.queries)
