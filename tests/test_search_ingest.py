"""Indexing files: skipped inputs are listed, re-runs do not duplicate, interruptions lose nothing."""
from __future__ import annotations

import os

import numpy as np
import pytest
from search_fixtures import make_corpus, tiny_model, write_png

from mmembed.search.collection import Collection
from mmembed.search.discover import TextOptions
from mmembed.search.export import encode_inputs, write_vectors
from mmembed.search.info import NothingToIndexError


@pytest.fixture()
def corpus(tmp_path):
    return make_corpus(tmp_path / "photos")


def _all_ids(col: Collection) -> list[str]:
    return col._table.to_arrow().column("id").to_pylist()


def test_index_folder_and_text_files_lists_what_it_skips(tmp_path, corpus):
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    report = col.index_paths([corpus.root, corpus.csv, corpus.jsonl, tmp_path / "nowhere"], progress=False,
                             options=TextOptions(tags=("batch1",)))
    assert report.inserted == corpus.good_images + corpus.good_texts == len(col)
    skipped = {s.path.rsplit("/", 1)[-1]: s.reason for s in report.skipped}
    for name in corpus.bad:
        assert name in skipped, f"{name} not listed in {sorted(skipped)}"
    assert "not a readable image" in skipped["broken.png"]
    assert "truncated" in skipped["truncated.png"]
    assert "unsupported file type .docx" in skipped["notes.docx"]
    assert "does not exist" in skipped["nowhere"]
    assert "empty" in skipped[f"{corpus.csv.name}:4"]
    assert "not valid JSON" in skipped[f"{corpus.jsonl.name}:2"]
    sub = col.search("x", k=20, folder="sub")
    assert sorted(h.document.text for h in sub) == ["img1", "img3", "img5"]
    apple = col.search("a red apple", k=1, kind="text")[0].document
    assert (apple.language, apple.tags, apple.meta) == ("en", ("batch1", "fruit", "red"), {"rating": "5"})
    assert col.get(["q1"])[0].text == "une pomme rouge"  # the JSONL row's own id


def test_rerun_embeds_nothing_and_duplicates_nothing(tmp_path, corpus):
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    first = col.index_paths([corpus.root, corpus.csv], progress=False)
    again = col.index_paths([corpus.root, corpus.csv], progress=False)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, first.inserted)
    write_png(corpus.root / "img0.png", seed=1234)  # a changed file is re-embedded in place
    changed = col.index_paths([corpus.root], progress=False)
    assert (changed.inserted, changed.updated) == (0, 1)
    ids = _all_ids(col)
    assert len(ids) == len(set(ids)) == first.inserted


def test_interrupted_index_resumes_without_duplicates_or_loss(tmp_path, corpus, monkeypatch):
    for i in range(6, 20):
        write_png(corpus.root / f"more{i}.png", i)
    total = corpus.good_images + 14
    model = tiny_model()
    col = Collection(tmp_path / "c.lance", model=model, batch_size=2)
    real = model.encode_image
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "encode_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        col.index_paths([corpus.root], chunk_size=4, progress=False)
    committed = len(col)
    assert 0 < committed < total  # what was embedded before Ctrl-C is committed
    monkeypatch.setattr(model, "encode_image", real)
    report = col.index_paths([corpus.root], chunk_size=4, progress=False)
    assert report.unchanged == committed and report.inserted == total - committed
    ids = _all_ids(col)
    assert len(ids) == len(set(ids)) == total
    stored = col.vectors([h.document.id for h in col.search("x", k=total, kind="image")])
    assert np.isfinite(stored).all() and np.allclose(np.linalg.norm(stored, axis=1), 1, atol=1e-5)


# ---- re-indexing mirrors the folder ------------------------------------------------------------
def _texts(col: Collection) -> list[str]:
    return sorted(col._table.to_arrow().column("text").to_pylist())


def test_reindex_removes_rows_of_deleted_files_and_of_lines_a_file_no_longer_has(tmp_path):
    root, other = tmp_path / "r1", tmp_path / "r2"
    write_png(root / "cat.png", 1)
    write_png(root / "coffee.png", 2)
    write_png(other / "dog.png", 3)
    fruit = root / "fruit.txt"
    fruit.write_text("a red apple\na yellow banana\na green pear\n", encoding="utf-8")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    assert col.index_paths([root, other], progress=False).inserted == 6
    (root / "coffee.png").unlink()
    fruit.write_text("a yellow banana\na green pear\n", encoding="utf-8")  # every line moves up one
    report = col.index_paths(root, progress=False)  # only r1 is re-indexed: r2's rows stay
    assert (report.inserted, report.updated, report.unchanged, report.removed) == (0, 0, 3, 2)
    assert _texts(col) == ["a green pear", "a yellow banana", "cat", "dog"]
    assert col.search("x", k=10, kind="image", where="text = 'coffee'") == []


def test_reindex_of_a_text_file_given_alone_and_of_repeated_lines(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\nhello\nworld\n", encoding="utf-8")  # a repeated line is a row of its own
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    assert col.index_paths(notes, progress=False).inserted == 3
    notes.write_text("world\nhello\n", encoding="utf-8")
    report = col.index_paths(notes, progress=False)
    assert (report.inserted, report.unchanged, report.removed) == (0, 2, 1)
    assert _texts(col) == ["hello", "world"]


def test_an_unreadable_text_file_keeps_its_stored_rows(tmp_path):
    notes = tmp_path / "d" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("hello\nworld\n", encoding="utf-8")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.index_paths(notes.parent, progress=False)
    (tmp_path / "d" / "more.txt").write_text("more\n", encoding="utf-8")
    notes.write_bytes(b"caf\xe9\n")  # not UTF-8 now: listed, and its rows are not thrown away
    report = col.index_paths(notes.parent, progress=False)
    assert report.removed == 0 and _texts(col) == ["hello", "more", "world"]
    assert any("not UTF-8" in s.reason for s in report.skipped)


# ---- ids used twice ----------------------------------------------------------------------------
def test_a_reused_id_is_listed_as_skipped_with_both_places(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.jsonl").write_text('{"id": "42", "text": "first file row"}\n', encoding="utf-8")
    (d / "b.jsonl").write_text('{"id": "42", "text": "second file row"}\n{"id": "7", "text": "x"}\n'
                               '{"id": "7", "text": "y"}\n', encoding="utf-8")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    report = col.index_paths([d, d / "a.jsonl"], progress=False)  # a.jsonl twice: its row once, silently
    assert report.inserted == 2 and col.get("42")[0].text == "first file row" and col.get("7")[0].text == "x"
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in report.skipped}
    assert set(reasons) == {"b.jsonl:1", "b.jsonl:3"}
    assert reasons["b.jsonl:1"].startswith("id '42' already used by ") and reasons["b.jsonl:1"].endswith("a.jsonl:1")
    assert reasons["b.jsonl:3"].endswith("b.jsonl:2")


def test_an_id_stored_for_a_file_outside_this_run_is_not_overwritten(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": "42", "text": "first file row"}\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": "42", "text": "second file row"}\n', encoding="utf-8")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.index_paths(tmp_path / "a.jsonl", progress=False)
    with pytest.raises(NothingToIndexError, match="id '42' is already stored for .*a.jsonl"):
        col.index_paths(tmp_path / "b.jsonl", progress=False)
    assert col.get("42")[0].text == "first file row"


# ---- inputs that used to break the run ---------------------------------------------------------
def test_utf8_byte_order_mark_is_dropped(tmp_path):
    bom = "\ufeff"
    (tmp_path / "n.csv").write_text(bom + "text,language\nein roter Apfel,de\n", encoding="utf-8")
    (tmp_path / "n.jsonl").write_text(bom + '{"text": "une pomme rouge"}\n', encoding="utf-8")
    (tmp_path / "n.txt").write_text(bom + "a red apple\n", encoding="utf-8")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    report = col.index_paths([tmp_path / "n.csv", tmp_path / "n.jsonl", tmp_path / "n.txt"], progress=False)
    assert report.skipped == [] and _texts(col) == ["a red apple", "ein roter Apfel", "une pomme rouge"]
    assert col.search("ein roter Apfel", k=1)[0].document.language == "de"


def test_symlink_loops_and_broken_links_are_skipped_by_the_link_path(tmp_path):
    lp = tmp_path / "lp"
    write_png(lp / "ok.png", 1)
    (lp / "a.png").symlink_to("b.png")
    (lp / "b.png").symlink_to("a.png")
    (lp / "gone.png").symlink_to(tmp_path / "nowhere.png")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    report = col.index_paths(lp, progress=False)
    assert report.inserted == 1
    reasons = {s.path: s.reason for s in report.skipped}
    assert "symlink loop" in reasons[str(lp / "a.png")] and "symlink loop" in reasons[str(lp / "b.png")]
    assert reasons[str(lp / "gone.png")] == f"broken symlink: its target {tmp_path / 'nowhere.png'} does not exist"


def test_a_file_name_that_is_not_utf8_is_indexed_and_shown_escaped(tmp_path):
    nu = tmp_path / "nu"
    write_png(nu / os.fsdecode(b"caf\xe9.png"), 1)
    write_png(nu / "ok.png", 2)
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    assert col.index_paths(nu, progress=False).inserted == 2
    hit = col.search("x", k=5, where="text = 'caf\\xe9'")[0].document
    assert hit.source.endswith("caf\\xe9.png")
    assert col.index_paths(nu, progress=False).unchanged == 2  # the same id again: nothing duplicated


def test_metadata_change_on_rerun_is_applied_without_embedding_again(tmp_path, monkeypatch):
    root = tmp_path / "r"
    write_png(root / "cat.png", 1)
    (root / "t.csv").write_text("text,tags\na red apple,holiday\n", encoding="utf-8")
    model = tiny_model()
    col = Collection(tmp_path / "c.lance", model=model)
    col.index_paths(root, progress=False)
    ids = sorted(_all_ids(col))
    before = col.vectors(ids)
    looks = col.appearances(ids)
    assert [a is None for a in looks] == [d.kind == "text" for d in col.get(ids)]

    def refuse(*args, **kwargs):
        raise AssertionError("nothing should be embedded again")

    monkeypatch.setattr(model, "encode_image", refuse)
    monkeypatch.setattr(model, "encode_text", refuse)
    monkeypatch.setattr(model, "encode_appearance", refuse)
    report = col.index_paths(root, progress=False, options=TextOptions(tags=("holiday",)))
    # the image gains the tag; the CSV row already has it (and does not get it twice)
    assert (report.updated, report.relabeled, report.embedded, report.unchanged) == (1, 1, 0, 1)
    assert {d.text: d.tags for d in col.get(ids)} == {"cat": ("holiday",), "a red apple": ("holiday",)}
    np.testing.assert_array_equal(col.vectors(ids), before)
    for now, was in zip(col.appearances(ids), looks):  # the relabelled image keeps its appearance
        assert (now is None and was is None) or np.array_equal(now, was)
    assert col.index_paths(root, progress=False, options=TextOptions(tags="holiday")).unchanged == 2


def test_only_unreadable_inputs_refuse_and_create_nothing(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.png").write_text("hi\n")
    path = tmp_path / "bad.lance"
    with pytest.raises(NothingToIndexError, match=r"nothing to index in .*bad.*a\.jpg: .*b\.png"):
        Collection(path, model=tiny_model()).index_paths(bad, progress=False)
    assert not path.exists()


def test_chunk_size_below_the_embedding_group_is_honoured(tmp_path, monkeypatch):
    for i in range(7):
        write_png(tmp_path / "p" / f"{i}.png", i)
    col = Collection(tmp_path / "c.lance", model=tiny_model(), batch_size=32)
    sizes = []
    real = col.upsert
    monkeypatch.setattr(col, "upsert", lambda docs, vectors=None, appearance=None: sizes.append(len(docs)) or real(docs, vectors, appearance))
    assert col.index_paths(tmp_path / "p", chunk_size=3, progress=False).inserted == 7
    assert sizes == [3, 3, 1]
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        col.index_paths(tmp_path / "p", chunk_size=0, progress=False)


# ---- mmembed encode ----------------------------------------------------------------------------
def test_encode_matches_rows_by_position_not_id(tmp_path):
    a, b, dup = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "dup.csv"
    a.write_text("id,text\n1,a red apple\n2,a fast car\n", encoding="utf-8")
    b.write_text("id,text\n1,a fast car\n2,a red apple\n", encoding="utf-8")
    dup.write_text("id,text\n7,a red apple\n7,a fast car\n", encoding="utf-8")
    model = tiny_model()
    expected = model.encode_text(["a red apple", "a fast car"])
    out = encode_inputs(model, [str(a), str(b)], progress=False)
    np.testing.assert_allclose(out.vectors, expected[[0, 1, 1, 0]], atol=1e-5)
    assert len(out.notes) == 1 and "'1' at " in out.notes[0] and "id column is ambiguous" in out.notes[0]
    one = encode_inputs(model, str(dup), progress=False)  # a bare str is one input
    np.testing.assert_allclose(one.vectors, expected, atol=1e-5)
    with pytest.warns(UserWarning, match="ambiguous"):
        write_vectors(tmp_path / "x.parquet", one)


def test_exported_vectors_are_written_whole_in_either_format(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    src = tmp_path / "t.txt"
    src.write_text("a red apple\na fast car\n", encoding="utf-8")
    out = encode_inputs(tiny_model(), [str(src)], progress=False)
    npy = write_vectors(tmp_path / "V.NPY", out)  # np.save given a name would append ".npy" to this one
    np.testing.assert_array_equal(np.load(npy), out.vectors)
    table = pq.read_table(write_vectors(tmp_path / "v.parquet", out))
    assert table.column("text").to_pylist() == ["a red apple", "a fast car"]
    assert table.column("source").to_pylist() == [str(src.resolve())] * 2

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        write_vectors(npy, out)
    np.testing.assert_array_equal(np.load(npy), out.vectors)  # the earlier export is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["V.NPY", "t.txt", "v.parquet"]

def test_encode_keeps_input_order_across_texts_and_images(tmp_path):
    pic = write_png(tmp_path / "pic.png", 5)
    model = tiny_model()
    out = encode_inputs(model, ["first", str(pic), "second"], progress=False)
    assert [d.kind for d in out.documents] == ["text", "image", "text"]
    np.testing.assert_allclose(out.vectors[[0, 2]], model.encode_text(["first", "second"]), atol=1e-5)


# ---- re-indexing never removes what it did not look at -------------------------------------------
def test_hidden_files_and_folders_indexed_explicitly_survive_a_walk_of_their_folder(tmp_path):
    a = tmp_path / "A"
    a.mkdir()
    (a / ".notes.txt").write_text("secret one\nsecret two\n", encoding="utf-8")
    (a / "v.txt").write_text("visible\n", encoding="utf-8")
    write_png(a / ".cache" / "c.png", 1)
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.index_paths([a / ".notes.txt", a / ".cache"], progress=False)
    report = col.index_paths(a, progress=False)  # the walk leaves hidden names out: their rows are not gone
    assert (report.inserted, report.removed) == (1, 0)
    assert _texts(col) == ["c", "secret one", "secret two", "visible"]
    (a / ".notes.txt").write_text("secret one\n", encoding="utf-8")  # read itself, it still mirrors
    assert col.index_paths(a / ".notes.txt", progress=False).removed == 1


def test_a_text_file_with_a_skipped_row_keeps_its_stored_rows(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    table = d / "t.csv"
    table.write_text("body,note\nfirst body,a\nsecond body,b\n", encoding="utf-8")
    lines = d / "l.jsonl"
    lines.write_text('{"text": "one"}\n{"text": "two"}\n', encoding="utf-8")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.index_paths(table, progress=False, options=TextOptions(text_field="body"))
    col.index_paths(lines, progress=False)
    assert _texts(col) == ["first body", "one", "second body", "two"]
    (d / "more.txt").write_text("more\n", encoding="utf-8")
    lines.write_text('{"text": "one"}\n{"text": "tw\n', encoding="utf-8")  # a corrupted line: which row was it?
    report = col.index_paths(d, progress=False)  # and text_field forgotten: every CSV row skipped
    assert (report.inserted, report.removed) == (1, 0)
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in report.skipped}
    assert "not valid JSON" in reasons["l.jsonl:2"] and reasons["t.csv:2"].startswith("no text field")
    assert _texts(col) == ["first body", "more", "one", "second body", "two"]
    lines.write_text('{"text": "one"}\n', encoding="utf-8")  # read without a skip, the file mirrors again
    assert col.index_paths(lines, progress=False).removed == 1


def test_a_symlinked_image_whose_target_is_missing_keeps_its_row(tmp_path):
    drive, a = tmp_path / "drive", tmp_path / "A"
    write_png(drive / "p.png", 1)
    write_png(a / "ok.png", 2)
    (a / "p.png").symlink_to(drive / "p.png")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    assert col.index_paths(a, progress=False).inserted == 2
    (drive / "p.png").rename(tmp_path / "elsewhere.png")  # the drive is not mounted now
    report = col.index_paths(a, progress=False)
    assert report.removed == 0 and len(col) == 2
    assert any(s.path == str(a / "p.png") and "broken symlink" in s.reason for s in report.skipped)


def test_a_subfolder_replaced_by_a_symlink_is_listed_and_keeps_its_rows(tmp_path):
    a, other = tmp_path / "A", tmp_path / "other"
    write_png(a / "ok.png", 1)
    write_png(a / "sub" / "x.png", 2)
    (a / "sub" / "t.txt").write_text("under sub\n", encoding="utf-8")
    other.mkdir()
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    assert col.index_paths(a, progress=False).inserted == 3
    (a / "sub" / "x.png").unlink()
    (a / "sub" / "t.txt").unlink()
    (a / "sub").rmdir()
    (a / "sub").symlink_to(other, target_is_directory=True)
    report = col.index_paths(a, progress=False)
    assert report.removed == 0 and len(col) == 3
    assert [(s.path, s.reason) for s in report.skipped] == [(str(a / "sub"), "symlinked folder, not followed")]


def test_a_symlinked_image_does_not_take_over_the_row_of_its_target(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    write_png(b / "photo.png", 1)
    write_png(a / "own.png", 2)
    (a / "link.png").symlink_to(b / "photo.png")
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.index_paths(b, progress=False)
    report = col.index_paths(a, progress=False)
    assert (report.inserted, report.updated) == (1, 0)
    assert [(s.path, s.reason) for s in report.skipped] == [
        (str(a / "link.png"), f"same file as {b / 'photo.png'}, already indexed from there")]
    (a / "link.png").unlink()
    assert col.index_paths(a, progress=False).removed == 0
    assert sorted(h.document.source for h in col.search("x", k=5, kind="image")) == [str(a / "own.png"), str(b / "photo.png")]


@pytest.mark.parametrize("source, covered", [
    ("/lib/a.png", True),  # in a walked folder
    ("/lib/sub/b.png", True),  # below it
    ("/lib/.cache/c.png", False),  # a hidden folder the walk left out ...
    ("/lib/.cache/kept/d.png", True),  # ... unless it was walked itself (given explicitly)
    ("/lib/.e.png", False),  # a hidden file
    ("/lib/locked/f.png", False),  # below a folder that could not be listed
    ("/lib/locked", False),
    ("/lib-other/g.png", False),  # a name that only starts like a walked folder
    ("/notes/h.txt", True),  # a text file read in full
    ("/notes/i.txt", False),  # one that was not
])
def test_discovery_covers_walked_files_and_read_text_files_only(source, covered):
    from mmembed.search.discover import Discovery

    found = Discovery(folders=["/lib/", "/lib/.cache/kept"], unreadable=["/lib/locked"], files_read={"/notes/h.txt"})
    assert found.covers(source) is covered


def test_discovery_of_the_root_folder_covers_what_is_not_hidden_or_unreadable():
    from mmembed.search.discover import Discovery

    found = Discovery(folders=["/"], unreadable=["/srv/locked/"])
    assert found.covers("/a.png") and found.covers("/home/u/b.png")
    assert not found.covers("/home/.u/c.png") and not found.covers("/srv/locked/d.png")
    found.unreadable.append("/home")  # the lookup sets follow the lists as they grow
    assert not found.covers("/home/u/b.png")
