"""The freedict dataset: the dictd reader, the held-out filters and the missing-package message."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from dictd_fixtures import write_dictd

from mmembed.data.builders import MissingSourceError, build_dataset, freedict, sources
from mmembed.data.builders.cldr_terms import held_out_names
from mmembed.data.builders.dictd import DictdError, read_dictd
from mmembed.data.manifest import read_manifest


def test_reader_cleans_senses_and_skips_examples_metadata_and_aliases(tmp_path):
    index = write_dictd(tmp_path, "freedict-eng-hin", [
        ("accuse", 'accuse /ɐkjˈuːz/ <VT>\n1. दोष~लगाना\n      "The government was accused."\n2. आरोप लगाना\n'),
        ("maharaja", "Maharaja /mˌahɐɹˈɑːdʒə/ <N>\n1. महाराजा\n   see: {raja}\n"),
    ], aliases={"maharajah": "maharaja"})
    entries = list(read_dictd(index))
    assert [e.headword for e in entries] == ["accuse", "Maharaja"]  # the header's spelling, once per entry
    assert entries[0].senses == ("दोष लगाना", "आरोप लगाना")
    assert entries[1].senses == ("महाराजा",)


def test_reader_names_the_bad_index_line(tmp_path):
    index = write_dictd(tmp_path, "freedict-eng-swh", [("broom", "broom /bɹˈuːm/ <n>\n\nufagio\n")])
    index.write_text(index.read_text() + "not a dictd line\n")
    with pytest.raises(DictdError, match=r"freedict-eng-swh.index:3: expected"):
        list(read_dictd(index))


@pytest.fixture
def fake_freedict(tmp_path, monkeypatch):
    """The four dictionaries as tiny dictd files; one entry is a held-out `parallel` name."""
    held = sorted(held_out_names(sources.CLDR.require(), sources.PYCOUNTRY.require()))[0].strip()
    folder = tmp_path / "dictd"
    write_dictd(folder, "freedict-eng-swh", [
        ("broom", "broom /bɹˈuːm/ <n>\n\nufagio\n"),
        ("tomato", "tomato /təmˈɑːtəʊ/ <n>\n\nnyanya\n"),
        (held.casefold(), f"{held} /x/ <n>\n\nneno\n"),
    ])
    write_dictd(folder, "freedict-swh-eng", [
        ("burudani", "burudani /bˌurudˈani/ <n> [sg=pl]\n\nentertainment, recreation\n"),
        ("magonjwa", "magonjwa /x/ <n>\n\nPlural of : sickness\n"),
        ("ki-", "ki- /x/\n\n-prefix\n"),
    ])
    write_dictd(folder, "freedict-eng-hin", [("glue", "glue /ɡlˈuː/ <N>\n1. सरेश\n2. सरेश~लगाना\n")])
    write_dictd(folder, "freedict-eng-ara", [("weakness", "Weakness /x/\n1. الضعف\n2. الوهن\n")])
    fakes = tuple(sources.DebianSource(s.package, folder / s.path.name, s.what, s.license) for s in sources.FREEDICT)
    monkeypatch.setattr(sources, "FREEDICT", fakes)
    holdout = tmp_path / "build"
    (holdout / "emoji").mkdir(parents=True)
    (holdout / "emoji" / "test.jsonl").write_text(json.dumps(
        {"concept": "emoji:1f345", "caption": "Tomato", "lang": "en", "image": "images/x.png"}) + "\n")
    return holdout, held


def test_build_pairs_words_and_drops_held_out_concepts(tmp_path, fake_freedict):
    holdout, held = fake_freedict
    out = build_dataset("freedict", tmp_path / "freedict", holdout=str(holdout))
    records = [r for split in ("train", "dev", "test") for r in read_manifest(out / f"{split}.jsonl")]
    pairs = {(r.text, r.caption, r.lang) for r in records}
    assert {("broom", "ufagio", "sw"), ("entertainment", "burudani", "sw"), ("recreation", "burudani", "sw"),
            ("sickness", "magonjwa", "sw"), ("glue", "सरेश", "hi"), ("glue", "सरेश लगाना", "hi"),
            ("Weakness", "الضعف", "ar"), ("Weakness", "الوهن", "ar")} == pairs
    assert all(r.kind == "word" and r.concept == f"word:{r.text.casefold()}" and r.license == freedict.LICENSE
               for r in records)
    card = json.loads((out / "card.json").read_text())
    # 'tomato' is a held-out emoji's English caption; the held-out parallel name would teach that test pair
    assert card["stats"]["dropped"] == {"English caption of a held-out image concept": 1,
                                        "name of a held-out language or territory": 1}
    assert card["stats"]["holdout_datasets_read"] == ["emoji"]
    assert {s["package"] for s in card["sources"]} >= {"dict-freedict-eng-swh", "dict-freedict-swh-eng"}


def test_build_options_langs_and_holdout(tmp_path, fake_freedict):
    holdout, _ = fake_freedict
    out = build_dataset("freedict", tmp_path / "sw", langs="sw", holdout=None)
    langs = {r.lang for split in ("train", "dev", "test") for r in read_manifest(out / f"{split}.jsonl")}
    assert langs == {"sw"}
    texts = {r.text for split in ("train", "dev", "test") for r in read_manifest(out / f"{split}.jsonl")}
    assert "tomato" in texts  # holdout=None: no image dataset is read
    with pytest.raises(ValueError, match=r"translations in ar, hi, sw only; langs=\['de'\] selects none"):
        build_dataset("freedict", tmp_path / "de", langs="de", holdout=None)
    assert not (tmp_path / "de").exists()
    with pytest.raises(ValueError, match="holdout='nowhere' is not a folder"):
        build_dataset("freedict", tmp_path / "x", holdout="nowhere")
    assert not (tmp_path / "x").exists()


def test_missing_dictionary_names_the_package(tmp_path, monkeypatch):
    missing = sources.DebianSource("dict-freedict-eng-swh", tmp_path / "none.index", "FreeDict eng-swh dictionary", "GPL-2+")
    monkeypatch.setattr(sources, "FREEDICT", (missing, *sources.FREEDICT[1:]))
    with pytest.raises(MissingSourceError, match="apt-get install dict-freedict-eng-swh"):
        build_dataset("freedict", tmp_path / "out", holdout=None)
    assert not (tmp_path / "out").exists()
