"""`mmembed data build`: what --out may replace, and builds that would write nothing (tiny real builds)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mmembed.data.builders import build_dataset
from mmembed.data.builders.concepts import langs_select_none, parse_langs
from mmembed.data.builders.output import is_build
from mmembed.data.cli import data_app


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*args: str):
    root = typer.Typer()
    root.add_typer(data_app, name="data")
    return CliRunner().invoke(root, ["data", "build", *args])


@pytest.fixture
def project(tmp_path) -> Path:
    """A user's folder that is not a dataset build."""
    (tmp_path / "myproj" / "src").mkdir(parents=True)
    (tmp_path / "myproj" / "src" / "notes.txt").write_text("precious")
    (tmp_path / "myproj" / "thesis.tex").write_text("keep")
    return tmp_path / "myproj"


def test_a_folder_that_is_not_a_build_or_a_file_is_refused_and_kept(tmp_path, project):
    before = _tree(project)
    with pytest.raises(ValueError, match=r"myproj is a folder that holds other things \(src, thesis.tex\)"):
        build_dataset("parallel", project, limit=3)
    res = _cli("parallel", "--out", str(project), "--limit", "3")
    assert res.exit_code == 2 and "not a previous build" in res.output and "Traceback" not in res.output
    assert _tree(project) == before
    file = tmp_path / "data.txt"
    file.write_text("mine")
    res = _cli("parallel", "--out", str(file), "--limit", "3")
    assert res.exit_code == 2 and "data.txt is a file" in res.output
    assert file.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt", "myproj"]  # no staging folder left


def test_out_dot_is_refused_unless_it_is_a_build(tmp_path, project, monkeypatch):
    monkeypatch.chdir(project)
    before = _tree(project)
    res = _cli("parallel", "--out", ".", "--limit", "3")
    assert res.exit_code == 2 and "holds other things" in res.output and "Traceback" not in res.output
    assert _tree(project) == before
    build = tmp_path / "b"
    build_dataset("parallel", build, limit=3)
    monkeypatch.chdir(build)
    res = _cli("parallel", "--out", ".", "--limit", "5")  # a build may be replaced, even as the working folder
    assert res.exit_code == 0, res.output
    assert "5 concepts" in res.output and str(build) in res.output


def test_a_build_an_empty_folder_and_a_link_to_a_build_are_replaced(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert build_dataset("emoji", empty, limit=2, langs="en") == empty
    assert is_build(empty)
    first = _tree(empty)
    link = tmp_path / "link"
    link.symlink_to(empty)
    assert build_dataset("emoji", link, limit=3, langs="en") == empty  # the build behind the link is replaced
    assert link.is_symlink() and _tree(empty) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "link"]


def test_what_marks_a_build(tmp_path):
    folder = tmp_path / "b"
    build_dataset("parallel", folder, limit=3)
    assert is_build(folder)
    (folder / "notes.md").write_text("mine")  # a file a build does not write: the folder is no longer replaced
    assert not is_build(folder)
    with pytest.raises(ValueError, match=r"holds other things \(card.json, dev.jsonl, notes.md"):
        build_dataset("parallel", folder, limit=3)
    assert (folder / "notes.md").read_text() == "mine"
    (folder / "notes.md").unlink()
    (folder / "card.json").write_text("{not json")
    assert not is_build(folder)
    (folder / "card.json").write_text(json.dumps({"dataset": "parallel"}))
    (folder / "test.jsonl").unlink()
    assert not is_build(folder)
    assert not is_build(tmp_path / "missing") and not is_build(tmp_path)


@pytest.mark.parametrize("langs, says", [
    ("EN", r"langs=\['EN'\] selects none of them \(did you mean 'en'\?; codes are case-sensitive"),
    ("xx,yy", r"parallel has captions in \d+ languages \(ab, .*\) only; langs=\['xx', 'yy'\] selects none"),
    ("en;de", r"separate codes with commas"),
])
def test_langs_that_select_nothing_are_refused_and_the_previous_build_stays(tmp_path, langs, says):
    out = tmp_path / "o"
    build_dataset("parallel", out, limit=5)
    before = _tree(out)
    with pytest.raises(ValueError, match=says):
        build_dataset("parallel", out, limit=5, langs=langs)
    res = _cli("parallel", "--out", str(out), "--limit", "5", "--langs", langs)
    assert res.exit_code == 2 and "selects none" in res.output and "Traceback" not in res.output
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_limit_must_be_at_least_one(tmp_path):
    out = tmp_path / "o"
    build_dataset("emoji", out, limit=2, langs="en")
    before = _tree(out)
    for limit in ("0", "-1"):
        res = _cli("emoji", "--out", str(out), "--limit", limit)
        assert res.exit_code == 2 and "limit must be >= 1" in res.output and f"got {limit}" in res.output
    assert _tree(out) == before


def test_emoji_langs_error_names_its_languages(tmp_path):
    with pytest.raises(ValueError, match=r"emoji has captions in \d+ languages .*did you mean 'zh_Hant'\?"):
        build_dataset("emoji", tmp_path / "e", limit=2, langs="ZH_HANT")
    assert not (tmp_path / "e").exists()


def test_langs_select_none_message():
    langs = parse_langs("De")
    assert str(langs_select_none("x", langs, ["ar", "de"], "translations")).startswith(
        "x has translations in ar, de only; langs=['De'] selects none of them (did you mean 'de'?")
    assert "x: no records for langs=['q']" in str(langs_select_none("x", ["q"]))


def test_a_build_of_another_dataset_is_not_replaced(tmp_path):
    folder = tmp_path / "b"
    build_dataset("parallel", folder, limit=3)
    before = _tree(folder)
    with pytest.raises(ValueError, match=r"holds a build of 'parallel', not of 'emoji'; give another folder"):
        build_dataset("emoji", folder, limit=2, langs="en")
    assert _tree(folder) == before
