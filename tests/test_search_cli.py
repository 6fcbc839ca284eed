"""The search commands through typer: index, search (+ --html), encode, demo, and their errors."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from PIL import Image
from search_fixtures import make_corpus, roles_model, tiny_model, write_png
from typer.testing import CliRunner

from mmembed.search import cli as search_cli
from mmembed.search.demo import run_demo


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    search_cli.register(app)
    return app


@pytest.fixture(autouse=True)
def _cached_tiny(monkeypatch):
    """Commands load models by name; hand them the already-loaded tiny model."""
    from mmembed import registry

    real = registry.load
    monkeypatch.setattr(registry, "load", lambda name=None: tiny_model() if name == "tiny-random" else real(name))


def run(app, *args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_every_command_has_help(app):
    for cmd in ("index", "search", "encode", "demo", "serve"):
        result = run(app, cmd, "--help")
        assert result.exit_code == 0 and "Usage" in result.output, cmd


def test_index_then_search_prints_a_table_and_writes_html(app, tmp_path):
    corpus = make_corpus(tmp_path / "photos")
    col = tmp_path / "c.lance"
    result = run(app, "index", corpus.root, corpus.csv, "--collection", col, "--model", "tiny-random")
    assert result.exit_code == 0, result.output
    assert f"indexed {corpus.good_images + 2} new" in result.output
    assert "broken.png" in result.output and "skipped" in result.output
    page = tmp_path / "out.html"
    result = run(app, "search", "ein roter Apfel", "--collection", col, "-k", "3", "--html", page)
    assert result.exit_code == 0, result.output
    assert "ein roter Apfel" in result.output and "score" in result.output
    assert page.read_text().count("data:image/png;base64,") >= 1
    result = run(app, "search", "x", "-c", col, "--language", "de", "--kind", "text")
    assert "ein roter Apfel" in result.output and "a red apple" not in result.output


def test_search_errors_are_one_clear_line(app, tmp_path):
    result = run(app, "search", "hello", "--collection", tmp_path / "nope.lance")
    assert result.exit_code == 1 and "no collection at" in result.output
    col = tmp_path / "c.lance"
    run(app, "index", make_corpus(tmp_path / "p").csv, "-c", col, "-m", "tiny-random")
    result = run(app, "index", tmp_path / "p", "-c", col, "-m", "tiny-random-llama")
    assert result.exit_code == 1 and "holds vectors of model 'tiny-random'" in result.output
    assert "Traceback" not in result.output


def test_indexing_nothing_is_an_error_that_leaves_no_collection(app, tmp_path):
    (tmp_path / "empty").mkdir()
    col = tmp_path / "typo.lance"
    result = run(app, "index", tmp_path / "nowhere", tmp_path / "empty", "-c", col, "-m", "tiny-random")
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and "nothing to index in" in out and "nowhere: does not exist" in out
    assert not col.exists()  # no empty collection left behind
    existing = tmp_path / "c.lance"
    assert run(app, "index", make_corpus(tmp_path / "p").csv, "-c", existing, "-m", "tiny-random").exit_code == 0
    result = run(app, "index", tmp_path / "empty", "-c", existing, "-m", "tiny-random")
    assert result.exit_code == 1 and existing.is_dir()  # an existing collection is left as it was
    assert run(app, "search", "apple", "-c", existing).exit_code == 0


def test_encode_embeds_images_in_the_role_asked(app, tmp_path):
    model = roles_model()
    model.save(tmp_path / "roles")
    pic = write_png(tmp_path / "p.png", 5)
    npy = tmp_path / "v.npy"
    for extra, role in (([], "document"), (["--image-role", "query"], "query")):
        assert run(app, "encode", pic, "--out", npy, "-m", tmp_path / "roles", *extra).exit_code == 0
        np.testing.assert_allclose(np.load(npy), model.encode_image([pic], role=role), atol=1e-5)
    bad = run(app, "encode", pic, "--out", npy, "-m", tmp_path / "roles", "--image-role", "passage")
    assert bad.exit_code == 1 and "--image-role 'passage': use one of document, query" in " ".join(bad.output.split())


def test_encode_writes_npy_and_parquet(app, tmp_path):
    corpus = make_corpus(tmp_path / "p", images=2)
    npy, parquet = tmp_path / "v.npy", tmp_path / "v.parquet"
    assert run(app, "encode", "hello", "bonjour", "--out", npy, "-m", "tiny-random").exit_code == 0
    np.testing.assert_allclose(np.load(npy), tiny_model().encode_text(["hello", "bonjour"]), atol=1e-6)
    result = run(app, "encode", "hello", corpus.root / "img0.png", corpus.root / "broken.png", "-o", parquet, "-m", "tiny-random")
    assert result.exit_code == 0 and "broken.png" in result.output
    table = pq.read_table(parquet).to_pylist()
    assert [r["kind"] for r in table] == ["text", "image"] and len(table[1]["vector"]) == 64
    bad = run(app, "encode", "x", "--out", tmp_path / "v.csv", "-m", "tiny-random")
    assert bad.exit_code == 1 and "use one of .npy, .parquet" in bad.output
    lines = tmp_path / "lines.txt"
    lines.write_text("hello\n\n  \nbonjour\n", encoding="utf-8")
    result = run(app, "encode", lines, "--out", npy, "-m", "tiny-random")
    out = " ".join(result.output.split())
    assert result.exit_code == 0 and "lines.txt:2: blank line: no row" in out and "lines.txt:3: blank line" in out
    np.testing.assert_allclose(np.load(npy), tiny_model().encode_text(["hello", "bonjour"]), atol=1e-6)


def test_demo_writes_html_and_png_grid(app, tmp_path):
    result = run(app, "demo", "-m", "tiny-random", "--out", tmp_path / "d", "--size", "8", "--source", "clipart", "-k", "3")
    assert result.exit_code == 0, result.output
    assert "text-to-image" in result.output and "sw" in result.output and "zh" in result.output
    grid = Image.open(tmp_path / "d" / "demo_grid.png")
    assert grid.width > 300 and grid.height >= 10 * 96
    assert (tmp_path / "d" / "demo.html").read_text().count("data:image/png;base64,") == 10 * 3
    from mmembed.search.collection import Collection

    (folder,) = (tmp_path / "d").glob("collection-*.lance")  # its pictures keep their looks for image queries
    col = Collection(folder, create=False)
    ids = [r["id"] for r in col._rows("true", ["id"])]
    assert len(ids) == 8 and all(a is not None for a in col.appearances(ids))


def test_demo_falls_back_to_cross_lingual_text_without_image_support(tmp_path, monkeypatch):
    model = tiny_model()
    monkeypatch.setattr(model.config, "image_trained", False)
    notes: list[str] = []
    result = run_demo(tmp_path / "d", model, size=12, k=2, log=notes.append)
    assert result.mode == "cross-lingual text"
    assert any("no trained image projector" in n and "CROSS-LINGUAL TEXT" in n for n in notes)
    assert all(h.document.kind == "text" and h.document.language == "en" for r in result.results for h in r.hits)
    assert result.grid.is_file() and result.html.is_file()


def _one_error_line(result, *parts):
    out = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert out.count("error:") == 1 and "Traceback" not in out, result.output
    for p in parts:
        assert p in out, result.output


def test_file_system_errors_are_one_line(app, tmp_path, monkeypatch):
    regular = tmp_path / "regular.lance"
    regular.touch()
    result = run(app, "index", make_corpus(tmp_path / "p").csv, "-c", regular, "-m", "tiny-random")
    _one_error_line(result, "regular.lance is a regular file, not a collection folder")
    _one_error_line(run(app, "search", "x", "-c", regular), "regular.lance is a regular file")
    afile = tmp_path / "afile.txt"
    afile.touch()
    result = run(app, "encode", "hello", "--out", afile / "h.npy", "-m", "tiny-random")
    _one_error_line(result, "afile.txt is a file, not a folder")
    col = tmp_path / "c.lance"
    assert run(app, "index", make_corpus(tmp_path / "p").csv, "-c", col, "-m", "tiny-random").exit_code == 0
    _one_error_line(run(app, "search", "apple", "-c", col, "--html", tmp_path), "is a folder; give a file name")
    _one_error_line(run(app, "search", "apple", "-c", col, "-k", "100000000000"), "k must be an int in 1..1,000,000")

    def denied(path, *a, **k):  # tests run as root, which a read-only folder does not stop
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("mmembed.search.render.write_html", denied)
    _one_error_line(run(app, "search", "apple", "-c", col, "--html", tmp_path / "hits.html"), "hits.html: Permission denied")


def test_other_os_and_overflow_errors_are_one_line(app, monkeypatch):
    for err, text in [(IsADirectoryError(21, "Is a directory", "somedir"), "somedir: Is a directory"),
                      (FileExistsError(17, "File exists", "afile.txt"), "afile.txt: File exists"),
                      (OverflowError("int too big"), "out of range (int too big)")]:
        @search_cli._friendly
        def boom():
            raise err
        probe = typer.Typer()
        probe.command("boom")(boom)
        probe.command("other")(lambda: None)
        _one_error_line(run(probe, "boom"), text)


def test_interrupted_index_exits_130_without_an_error_line(app, tmp_path, monkeypatch):
    from mmembed.search.collection import Collection

    def interrupted(self, *a, **k):
        self.add_texts(["committed one", "committed two"])
        raise KeyboardInterrupt

    monkeypatch.setattr(Collection, "index_paths", interrupted)
    result = run(app, "index", make_corpus(tmp_path / "p").csv, "-c", tmp_path / "c.lance", "-m", "tiny-random")
    assert result.exit_code == 130, result.output
    assert "interrupted: 2 rows are committed" in result.output and "error" not in result.output


@pytest.mark.parametrize("args, message", [
    (("encode", "hello", "--out", "OUT/h.npy", "--dim", "0"), "--dim must be an int in 1..(the model's dim), got 0"),
    (("encode", "hello", "--out", "OUT/h.npy", "--batch-size", "0"), "--batch-size must be a positive int, got 0"),
    (("index", "CSV", "-c", "OUT/c.lance", "--dim", "0"), "--dim must be an int in 1..(the model's dim), got 0"),
    (("index", "CSV", "-c", "OUT/c.lance", "--batch-size", "0"), "--batch-size must be a positive int, got 0"),
    (("index", "CSV", "-c", "OUT/c.lance", "--chunk-size", "-1"), "--chunk-size must be a positive int, got -1"),
    (("search", "x", "-c", "OUT/c.lance", "-k", "0"), "-k must be a positive int, got 0"),
    (("search", "", "-c", "OUT/c.lance"), "QUERY is empty"),
    (("search", "  ", "-c", "OUT/c.lance"), "QUERY is empty"),
])
def test_bad_counts_are_refused_before_any_model_loads(app, tmp_path, monkeypatch, args, message):
    from mmembed import registry

    monkeypatch.setattr(registry, "load", lambda name=None: pytest.fail("a model was loaded"))
    csv = make_corpus(tmp_path / "p").csv
    args = [str(a).replace("OUT", str(tmp_path)).replace("CSV", str(csv)) for a in args]
    _one_error_line(run(app, *args, "-m", "tiny-random"), message)
    assert not (tmp_path / "h.npy").exists() and not (tmp_path / "c.lance").exists()


def test_dim_over_the_models_dim_is_refused(app, tmp_path):
    result = run(app, "encode", "hello", "--out", tmp_path / "h.npy", "--dim", "65", "-m", "tiny-random")
    _one_error_line(result, "--dim must be an int in 1..64, got 65")
    result = run(app, "index", make_corpus(tmp_path / "p").csv, "-c", tmp_path / "c.lance", "--dim", "65", "-m", "tiny-random")
    _one_error_line(result, "--dim must be an int in 1..64, got 65")
    assert not (tmp_path / "h.npy").exists() and not (tmp_path / "c.lance").exists()
    assert run(app, "encode", "hello", "--out", tmp_path / "h.npy", "--dim", "16", "-m", "tiny-random").exit_code == 0
    assert np.load(tmp_path / "h.npy").shape == (1, 16)


def test_encoding_an_empty_folder_is_an_error_that_writes_nothing(app, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(app, "encode", tmp_path / "empty", "--out", tmp_path / "v.npy", "-m", "tiny-random")
    _one_error_line(result, "nothing to encode in", "empty")
    assert not (tmp_path / "v.npy").exists()


def test_an_image_search_fuses_its_look_and_refuses_a_bad_weight(app, tmp_path):
    from pathlib import Path

    from search_fixtures import tiny_model, write_png

    from mmembed.search.collection import Collection

    corpus = make_corpus(tmp_path / "photos")
    col = tmp_path / "c.lance"
    assert run(app, "index", corpus.root, "--collection", col, "--model", "tiny-random").exit_code == 0
    query = write_png(tmp_path / "query.png", 42)  # not in the collection
    orders = []
    for weight in ("0", "1"):
        result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [str(a) for a in (  # one row per line
            "search", "--image", query, "-c", col, "-k", "6", "--kind", "image", "--appearance-weight", weight)])
        assert result.exit_code == 0, result.output
        hits = Collection(col, model=tiny_model(), create=False).search(query, k=6, kind="image",
                                                                        appearance_weight=float(weight))
        names = [Path(h.document.image).name for h in hits]
        assert sorted(names, key=result.output.index) == names  # the table lists them in the API's order
        orders.append(names)
    assert orders[0] != orders[1]  # the weight changed the order
    lean = tmp_path / "lean.lance"
    assert run(app, "index", corpus.root, "-c", lean, "-m", "tiny-random", "--no-appearance").exit_code == 0
    assert Collection(lean, model=tiny_model(), create=False).appearance_dim is None
    for args, message in (
        (["--image", query, "--appearance-weight", "1.5"], "appearance_weight must be a number in [0, 1]"),
        (["apple", "--appearance-weight", "0.5"], "--appearance-weight weighs an --image query's look"),
    ):
        result = run(app, "search", *args, "-c", col)
        assert result.exit_code == 1 and message in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output
