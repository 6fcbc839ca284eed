"""Query glossing (mmembed/glossary.py): dictionary lookup, the fused query vector, and `mmembed eval --gloss`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from dictd_fixtures import write_dictd
from eval_fixtures import make_eval_data
from typer.testing import CliRunner

from mmembed.cli import app
from mmembed.glossary import Glossary, GlossaryError, fuse_gloss, glossed_embeddings, words


@pytest.fixture
def dictd(tmp_path, monkeypatch):
    """Swahili both ways and an English -> German dictionary, in a folder MMEMBED_DICTD_DIR points at."""
    folder = tmp_path / "dictd"
    write_dictd(folder, "freedict-swh-eng", [
        ("ndege", "ndege /x/ <n>\n\nbird, airplane\n"),
        ("mbwa", "mbwa /x/ <n>\n\ndog\n"),
        ("pilipili mbichi", "pilipili mbichi /x/\n\ngreen pepper\n"),
        ("ya", "ya /x/\n\nof\n"),  # a gloss that is an English stop word carries nothing
    ])
    write_dictd(folder, "freedict-eng-swh", [("big", "big /x/ <adj>\n\nkubwa\n"), ("pepper", "pepper /x/ <n>\n\npilipili\n")])
    write_dictd(folder, "freedict-eng-deu", [
        ("canine", "canine /x/ <n>\n\nHund\n"), ("dawg", "dawg /x/ <n>\n\nHund\n"), ("dog", "dog /x/ <n>\n\nHund\n"),
        ("tub", "tub /x/ <n>\n\nWanne, Kübel, Hund\n"),  # 'Hund' as a third sense: a rare meaning
        ("one", "one /x/\n\nein, eins\n"), ("unit", "unit /x/ <n>\n\nEinheit, ein\n"),
        ("red", "red /x/ <adj>\n\nrot, rotes\n"), ("circle", "circle /x/ <n>\n\nKreis\n"),
        ("blue", "blue /x/ <adj>\n\nblau, blaues\n"), ("square", "square /x/ <n>\n\nQuadrat\n"),
        ("green", "green /x/ <adj>\n\ngrün, grünes\n"), ("black", "black /x/ <adj>\n\nschwarz, schwarzes\n"),
    ])
    monkeypatch.setenv("MMEMBED_DICTD_DIR", str(folder))
    monkeypatch.setenv("MMEMBED_HOME", str(tmp_path / "home"))  # the parsed-dictionary cache goes here
    return folder


def test_words_drop_punctuation_and_keep_combining_marks():
    assert words("Mti, MKUBWA!") == ["mti", "mkubwa"]
    assert words("एक चिकन।") == ["एक", "चिकन"]  # Devanagari vowel signs stay inside the word


def test_gloss_looks_up_words_and_longest_phrases(dictd):
    sw = Glossary.load("sw")
    assert sw.gloss("Ndege") == "bird, airplane"  # a one-entry query keeps its first two senses
    assert sw.gloss("mbwa kubwa") == "dog big"  # each word's first sense, in order; eng-swh read backwards
    assert sw.gloss("pilipili mbichi ya manjano") == "green pepper"  # the phrase wins over 'pilipili' alone
    assert sw.gloss("ya") is None and "ya" not in sw.entries  # only a stop word: nothing to add
    assert sw.gloss("habari za asubuhi") is None


def test_glosses_are_ranked_and_function_words_left_out(dictd):
    """eng-deu lists 'Hund' under canine, dawg, dog and tub in alphabetical order of the English: the main
    senses (rank 0) come first, the commonest English word (wordfreq) first among them."""
    de = Glossary.load("de")
    assert de.entries["hund"][0] == "dog" and de.entries["hund"][-1] == "tub"
    assert "ein" not in de.entries  # its main translation 'one' is an English stop word: a function word
    assert de.gloss("ein roter Hund") == "dog"


def test_the_parsed_dictionary_is_cached_until_the_dictionary_changes(dictd, tmp_path):
    assert Glossary.load("sw").gloss("mbwa") == "dog"
    cached = list((tmp_path / "home" / "glossaries").glob("sw-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["mbwa"] == ["dog"]
    write_dictd(dictd, "freedict-swh-eng", [("mbwa", "mbwa /x/ <n>\n\nhound\n")])  # a new package version
    assert Glossary.load("sw").gloss("mbwa") == "hound"
    for path in (tmp_path / "home" / "glossaries").glob("sw-*.json"):
        path.write_text("{not json")  # a damaged cache is parsed again, not trusted
    assert Glossary.load("sw").gloss("mbwa") == "hound"


def test_missing_and_unknown_dictionaries_name_what_to_install(dictd, tmp_path):
    with pytest.raises(GlossaryError, match=r"apt-get install dict-freedict-eng-hin"):
        Glossary.load("hi")
    with pytest.raises(GlossaryError, match=r"no dictionary for language 'zh'; glossing knows ar, de"):
        Glossary.load("zh")
    with pytest.raises(GlossaryError, match=r"a query language is a code such as 'sw', got int 7"):
        Glossary.load(7)
    assert Glossary.load(" SW-tz ").lang == Glossary.load("sw_KE").lang == "sw"  # region and case do not matter
    assert Glossary.language("swh") == "sw" and Glossary.language("deu") == "de"  # FreeDict's three-letter codes
    with pytest.raises(GlossaryError, match=r"freedict-swh-eng.index: no such dictionary"):
        Glossary.load("sw", dictd_dir=tmp_path / "nowhere")


def test_fuse_gloss_moves_only_glossed_rows_and_keeps_unit_rows():
    q = np.eye(3, dtype=np.float32)[:2]  # (2, 3)
    g = np.eye(3, dtype=np.float32)[[2, 2]]
    fused = fuse_gloss(q, g, np.array([True, False]), weight=1.0)
    assert np.allclose(fused[0], np.array([1, 0, 1]) / np.sqrt(2)) and np.allclose(fused[1], q[1])
    assert np.allclose(fuse_gloss(q, g, np.array([True, True]), weight=0.0), q)
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="gloss weight must be a finite number >= 0"):
            fuse_gloss(q, g, np.array([True, True]), weight=bad)


def test_glossed_embeddings_encode_each_gloss_once_with_the_same_encoder(dictd):
    basis = {"mbwa": 0, "dog": 1, "habari": 2}
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.eye(3, dtype=np.float32)[[basis[t] for t in texts]]

    out = glossed_embeddings(encode, ["mbwa", "habari"], Glossary.load("sw"), weight=1.0)
    assert calls == [["mbwa", "habari", "dog"]]  # queries and glosses in one call
    assert np.allclose(out[0], np.array([1, 1, 0]) / np.sqrt(2)) and np.allclose(out[1], [0, 0, 1])
    calls.clear()
    assert np.allclose(glossed_embeddings(encode, ["mbwa"], Glossary.load("sw"), weight=0.0), [[1, 0, 0]])
    assert calls == [["mbwa"]]  # weight 0: no gloss is embedded


runner = CliRunner()


def test_eval_gloss_moves_german_queries_onto_their_english_captions(dictd, tmp_path):
    """With a heavy weight a glossed German caption ('rotes Kreis' -> 'red circle') IS its English caption, so
    German -> English text retrieval becomes exact; English queries and image queries are untouched."""
    data = make_eval_data(tmp_path / "data")
    args = ["eval", "--model", "tiny-random", "--data", str(data), "--tasks", "t2t,t2i,i2t", "--no-plots",
            "--bootstrap", "0", "--langs", "en,de"]
    assert runner.invoke(app, [*args, "--out", str(tmp_path / "plain")]).exit_code == 0
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "gloss"), "--gloss-weight", "1000"])
    assert res.exit_code == 0, res.output
    plain, gloss = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("plain", "gloss"))
    assert plain["settings"]["gloss_weights"] is None and gloss["settings"]["gloss_weights"]["de"] == 1000

    def metric(payload, task, group):
        return next(r["metrics"] for r in payload["results"]
                    if (r["task"], r["dataset"], r["group"]) == (task, "shapes", group))

    assert metric(gloss, "t2t", "de->en")["R@1"] == 1.0 > metric(plain, "t2t", "de->en")["R@1"]
    assert metric(gloss, "t2i", "de") != metric(plain, "t2i", "de")
    assert metric(gloss, "t2i", "en") == metric(plain, "t2i", "en")
    assert metric(gloss, "i2t", "de") == metric(plain, "i2t", "de")


def test_eval_gloss_without_the_dictionary_fails_before_any_model_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("MMEMBED_DICTD_DIR", str(tmp_path / "empty"))
    data = make_eval_data(tmp_path / "data")
    res = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--tasks", "t2t",
                              "--gloss", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "apt-get install dict-freedict-eng-deu" in res.output and not (tmp_path / "out").exists()
    res = runner.invoke(app, ["eval", "--model", "tiny-random", "--data", str(data), "--gloss-weight", "-1",
                              "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "--gloss-weight: gloss weight must be a finite number >= 0" in res.output


# ---- search: Collection.search(query_lang=...), `mmembed search --query-lang`, /v1/search -----------------------

@pytest.fixture
def collection(tmp_path):
    from search_fixtures import tiny_model

    from mmembed.search.collection import Collection

    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.add_texts(["dog", "bird", "a red apple", "ein Hund", "green pepper"], language="en")
    return col


def test_collection_search_glosses_a_query_in_its_language(dictd, collection):
    plain = collection.query_vector("mbwa")
    glossed = collection.query_vector("mbwa", query_lang="sw", gloss_weight=1.0)
    dog = collection.query_vector("dog")
    assert np.allclose(glossed, (plain + dog) / np.linalg.norm(plain + dog), atol=1e-5)
    # the tiny model's cosines are random: a heavy weight makes the query its gloss
    assert collection.search("mbwa", k=1, query_lang="sw", gloss_weight=1000)[0].document.text == "dog"
    assert np.allclose(collection.query_vector("habari", query_lang="sw"), collection.query_vector("habari"))
    with pytest.raises(GlossaryError, match="no dictionary for language 'xx'"):
        collection.search("mbwa", query_lang="xx")
    with pytest.raises(ValueError, match="gloss weight must be a finite number >= 0"):
        collection.search("mbwa", query_lang="sw", gloss_weight=-1)


def test_search_cli_query_lang(dictd, collection, monkeypatch):
    import typer
    from search_fixtures import tiny_model

    from mmembed import registry
    from mmembed.search import cli as search_cli

    app = typer.Typer()
    search_cli.register(app)
    monkeypatch.setattr(registry, "load", lambda name=None: tiny_model())

    def search(*args):
        return runner.invoke(app, ["search", *map(str, args), "-c", collection.path], catch_exceptions=False)

    res = search("mbwa", "-k", 1, "--query-lang", "sw", "--gloss-weight", 1000)
    assert res.exit_code == 0 and "dog" in res.output, res.output
    res = search("mbwa", "--query-lang", "zh")
    assert res.exit_code == 1 and "no dictionary for language 'zh'" in res.output and "Traceback" not in res.output
    res = search("mbwa", "--gloss-weight", 1)
    assert res.exit_code == 1 and "--gloss-weight needs --query-lang" in res.output


def test_server_search_query_lang(dictd, collection):
    import httpx
    from search_fixtures import tiny_model

    from mmembed.search.server import BackgroundServer, create_app

    with BackgroundServer(create_app(tiny_model(), collection)) as url:
        r = httpx.post(url + "/v1/search", json={"query": "mbwa", "k": 1, "query_lang": "sw", "gloss_weight": 1000})
        assert r.status_code == 200 and r.json()["data"][0]["text"] == "dog", r.text
        r = httpx.post(url + "/v1/search", json={"query": "mbwa", "query_lang": "xx"})
        assert r.status_code == 422 and r.json()["error"]["param"] == "query_lang", r.text
        assert "no dictionary for language 'xx'" in r.json()["error"]["message"]
        r = httpx.post(url + "/v1/search", json={"query": "mbwa", "query_lang": "sw", "gloss_weight": -1})
        assert r.status_code == 422 and "gloss_weight must be a finite number >= 0" in r.json()["error"]["message"]
        r = httpx.post(url + "/v1/search", json={"query": "mbwa", "gloss_weight": 1})
        assert r.status_code == 422 and r.json()["error"]["param"] == "gloss_weight", r.text
        assert "gloss_weight needs query_lang" in r.json()["error"]["message"]


# ---- messy inputs (audit) ---------------------------------------------------------------------------------------

def test_decomposed_and_full_width_words_find_their_entries(dictd):
    """A query typed in NFD ('Ku\\u0308bel', macOS, copy-paste) or full-width ('ＭＢＷＡ') is the same word."""
    de, sw = Glossary.load("de"), Glossary.load("sw")
    assert de.gloss("Ku\u0308bel") == de.gloss("K\u00fcbel") == "tub"
    assert sw.gloss("ＭＢＷＡ") == "dog"


def test_damaged_dictionary_files_are_named_not_a_bare_codec_error(dictd):
    import gzip

    index = dictd / "freedict-swh-eng.index"
    good_index, good_data = index.read_bytes(), (dictd / "freedict-swh-eng.dict.dz").read_bytes()
    index.write_bytes(good_index + b"caf\xe9\tA\tB\n")  # a Latin-1 byte in the index
    with pytest.raises(GlossaryError, match=r"freedict-swh-eng\.index: unreadable dictd index"):
        Glossary.load("sw")
    index.write_bytes(good_index + b"cafe\tA!\tB\n")
    with pytest.raises(GlossaryError, match=r"freedict-swh-eng\.index:\d+: 'A!' is not a dictd base-64 number"):
        Glossary.load("sw")
    index.write_bytes(good_index)
    (dictd / "freedict-swh-eng.dict.dz").write_bytes(gzip.compress(good_data)[:10] + b"\xff" * 50)  # bad deflate
    with pytest.raises(GlossaryError, match=r"freedict-swh-eng\.dict\.dz: unreadable dictd data"):
        Glossary.load("sw")


def test_a_huge_gloss_weight_gives_the_gloss_not_a_zero_or_nan_vector(dictd, collection):
    q = np.eye(3, dtype=np.float32)[:1]
    g = np.eye(3, dtype=np.float32)[[1]]
    for weight in (1e20, 1e39, 1e300):
        assert np.allclose(fuse_gloss(q, g, np.array([True]), weight), g, atol=1e-6)
    assert np.allclose(fuse_gloss(q, g, np.array([False]), 1e20), q)
    glossed = collection.query_vector("mbwa", query_lang="sw", gloss_weight=1e20)
    assert np.allclose(glossed, collection.query_vector("dog"), atol=1e-5)


def test_concurrent_first_loads_read_the_dictionary_once(dictd, monkeypatch):
    import threading
    import time

    from mmembed import glossary

    reads, original = [], glossary._read_dictionaries

    def slow(*args):
        reads.append(1)
        time.sleep(0.3)
        return original(*args)

    monkeypatch.setattr(glossary, "_read_dictionaries", slow)
    glossary._cached.cache_clear()
    out = []
    threads = [threading.Thread(target=lambda: out.append(glossary.glossary_for("sw"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 4 and all(g is out[0] for g in out) and len(reads) == 1


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path):
    from mmembed.glossary import _write_cache

    target = tmp_path / "glossaries" / "sw-x.json"
    (target / "busy").mkdir(parents=True)  # a folder where the cache file goes: the rename fails
    _write_cache(target, {"mbwa": ("dog",)})
    assert sorted(p.name for p in target.parent.iterdir()) == ["sw-x.json"]


def test_glossing_options_that_do_not_fit_the_query_are_refused(dictd, collection):
    with pytest.raises(ValueError, match="gloss_weight needs query_lang"):
        collection.query_vector("mbwa", gloss_weight=-1)
    with pytest.raises(ValueError, match=r"got str '1'"):
        collection.query_vector("mbwa", query_lang="sw", gloss_weight="1")
    with pytest.raises(ValueError, match="an image or vector query has no language"):
        collection.query_vector(np.zeros(collection.dim, dtype=np.float32), query_lang="sw")


def test_eval_glosses_a_task_language_with_a_region_or_capitals():
    from types import SimpleNamespace

    from mmembed.evaluation.runner import QueryGlossing

    glossing = QueryGlossing({"de": 0.5})
    for group in ("de_AT", "DE->en", "de-CH->fr"):
        task = SimpleNamespace(group=group, queries=SimpleNamespace(modality="text"))
        assert QueryGlossing.query_lang(task) == "de" and glossing.applies(task)
    assert QueryGlossing.query_lang(SimpleNamespace(group="zh->en")) == "zh"
