"""Training sources read from dataset manifests: cross-lingual text pairs made from an image manifest
(anchor_lang) and concepts left out by category (drop_categories)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mmembed.data.manifest import PairRecord, write_manifest
from mmembed.training.config import SourceSpec, TrainConfig
from mmembed.training.pairs import PairsError, pairs_from_manifest
from mmembed.training.setup import build_sources


@pytest.fixture()
def manifest(tmp_path) -> Path:
    """Emoji-shaped records: one image per concept, a name per language, keywords, a category."""
    rows = {
        "emoji:apple": ("fruit", {"en": "red apple", "de": "roter Apfel", "sw": "tufaha jekundu"}),
        "emoji:dog": ("animal", {"en": "dog", "de": "Hund", "sw": "mbwa"}),
        "emoji:flag-de": ("flags", {"en": "flag: Germany", "de": "Flagge: Deutschland", "sw": "bendera: Ujerumani"}),
        "emoji:sun": ("weather", {"de": "Sonne", "sw": "jua"}),  # no English name: nothing to pair with
        "emoji:ok": ("symbol", {"en": "OK button", "de": "ok button", "sw": "kitufe cha OK"}),  # de = en (case)
    }
    recs = []
    for concept, (category, names) in rows.items():
        image = f"images/{concept.split(':')[1]}.png"
        for lang, name in names.items():
            recs.append(PairRecord(concept=concept, caption=name, lang=lang, image=image, kind="name"))
            recs.append(PairRecord(concept=concept, caption=f"{name} kw", lang=lang, image=image, kind="keyword"))
        recs.append(PairRecord(concept=concept, caption=category, lang="en", image=image, kind="category"))
    write_manifest(tmp_path / "train.jsonl", recs)
    return tmp_path / "train.jsonl"


def test_anchor_lang_pairs_each_name_with_the_english_name_of_its_concept(manifest):
    pairs = pairs_from_manifest(manifest, kinds=["name"], anchor_lang="en")
    got = {(p.concept, p.lang): (p.text, p.positive) for p in pairs}
    assert got == {
        ("emoji:apple", "de"): ("red apple", "roter Apfel"),
        ("emoji:apple", "sw"): ("red apple", "tufaha jekundu"),
        ("emoji:dog", "de"): ("dog", "Hund"),
        ("emoji:dog", "sw"): ("dog", "mbwa"),
        ("emoji:flag-de", "de"): ("flag: Germany", "Flagge: Deutschland"),
        ("emoji:flag-de", "sw"): ("flag: Germany", "bendera: Ujerumani"),
        ("emoji:ok", "sw"): ("OK button", "kitufe cha OK"),  # de's "ok button" is the English name again
    }
    assert all(p.image is None and p.features is None for p in pairs)  # text-text pairs, no image anchor
    # kinds pair with their own kind: a keyword's anchor is an English keyword, never a name
    keywords = pairs_from_manifest(manifest, kinds=["keyword"], anchor_lang="en", langs=["sw"])
    assert {(p.text, p.positive) for p in keywords} >= {("dog kw", "mbwa kw")}
    # without anchor_lang the same manifest gives (image, caption) pairs in every language
    assert all(p.image and p.text is None for p in pairs_from_manifest(manifest, kinds=["name"]))


def test_drop_categories_leaves_out_whole_concepts(manifest):
    pairs = pairs_from_manifest(manifest, kinds=["name"], anchor_lang="en", drop_categories=["FLAGS"])
    assert "emoji:flag-de" not in {p.concept for p in pairs} and len(pairs) == 5
    images = pairs_from_manifest(manifest, drop_categories=["flags", "animal"])
    assert {p.concept for p in images} == {"emoji:apple", "emoji:sun", "emoji:ok"}


def test_anchor_lang_bad_inputs_name_the_problem(manifest, tmp_path):
    with pytest.raises(PairsError, match=r"train.jsonl: anchor_lang = 'xx', but no caption is in that language"):
        pairs_from_manifest(manifest, anchor_lang="xx")
    with pytest.raises(PairsError, match=r"drop_categories \['flag'\] name no category of this manifest; its categories "
                                         r"are \['animal', 'flags', 'fruit', 'symbol', 'weather'\]"):
        pairs_from_manifest(manifest, drop_categories=["flags", "flag"])
    with pytest.raises(ValueError, match=r"cfg.toml \[\[sources\]\]: source 'mine': anchor_lang and drop_categories"):
        TrainConfig.from_dict({"sources": [{"name": "mine", "path": "my.csv", "custom": True, "anchor_lang": "en"}]},
                              where="cfg.toml")


def test_a_text_pair_source_from_an_image_manifest_can_be_distilled(manifest, tmp_path):
    """build_sources refuses distill = true on image pairs; the same manifest with anchor_lang is text pairs."""
    spec = dict(name="names", path=str(manifest), kinds=["name"], distill=True)
    cfg = TrainConfig(out=str(tmp_path / "run"), sources=[SourceSpec(**spec)], teacher="e5")
    with pytest.raises(ValueError, match="distill = true needs text-text pairs"):
        build_sources(cfg)
    cfg = TrainConfig(out=str(tmp_path / "run"), sources=[SourceSpec(**spec, anchor_lang="en")], teacher="e5")
    (source,), problems = build_sources(cfg)
    assert problems == [] and len(source) == 7 and set(source.by_concept["emoji:dog"]) == {"de", "sw"}
