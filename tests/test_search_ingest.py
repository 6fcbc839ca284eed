"""Indexing files: skipped inputs are listed, re-runs do not duplicate, interruptions lose nothing."""
from __future__ import annotations

import numpy as np
import pytest
from search_fixtures import make_corpus, tiny_model, write_png

from mmembed.search.collection import Collection
from mmembed.search.discover import TextOptions


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
