"""Collection: writes by id, search by text / image / vector, filters, the model record, ANN."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from search_fixtures import VectorsOnly, clustered, roles_model, tiny_model, write_png

import mmembed
from mmembed.registry import UnknownModelError
from mmembed.search.collection import Collection, WriteResult
from mmembed.search.documents import Document
from mmembed.search.info import CollectionNotFoundError, ModelMismatchError


@pytest.fixture()
def col(tmp_path):
    return Collection(tmp_path / "c.lance", model=tiny_model())


def test_collection_is_exposed_lazily():
    assert mmembed.Collection is Collection


def test_text_image_and_vector_search_find_the_item_itself(col, tmp_path):
    ids = col.add_texts(["a red apple", "ein Hund", "une voiture"], language="en")
    pics = [write_png(tmp_path / f"p{i}.png", i) for i in range(3)]
    img_ids = col.add_images(pics, captions=["zero", "one", "two"])
    assert len(col) == 6
    top = col.search("ein Hund", k=3)
    assert [h.rank for h in top] == [1, 2, 3]
    assert top[0].document.id == ids[1] and top[0].score == pytest.approx(1.0, abs=1e-5)
    assert top[0].score >= top[1].score >= top[2].score
    by_image = col.search(Path(pics[2]), k=1, kind="image")[0]
    assert by_image.document.id == img_ids[2] and by_image.document.text == "two"
    vec = col.vectors([ids[2]])[0]
    assert col.search(vec, k=1)[0].document.id == ids[2]
    np.testing.assert_allclose(vec, tiny_model().encode_text(["une voiture"])[0], atol=1e-6)


def test_filters_language_folder_tag_kind_and_where(col):
    docs = [
        Document("a", "text", "apple", language="en", folder="fruit/red", tags=("food", "red")),
        Document("b", "text", "Apfel", language="de", folder="fruit", tags=("food",)),
        Document("c", "text", "car", language="en", folder="vehicles", tags=("red",)),
        Document("d", "text", "l'auto", language="fr", folder="fruity", tags=()),
    ]
    col.upsert(docs)

    def ids(**filters):
        return sorted(h.document.id for h in col.search("x", k=10, **filters))

    assert ids(language="en") == ["a", "c"]
    assert ids(language=["de", "fr"]) == ["b", "d"]
    assert ids(folder="fruit") == ["a", "b"]  # a subfolder matches, a prefix-named sibling does not
    assert ids(tag="red") == ["a", "c"]
    assert ids(tag=["food"], language="en") == ["a"]
    assert ids(where="text = 'l''auto'") == ["d"]
    assert ids(language="it's") == []  # quotes in values are escaped, not SQL
    assert ids(kind="image") == []


def test_upsert_add_delete_and_get(col):
    col.upsert([Document("x", "text", "first"), Document("y", "text", "second")])
    result = col.upsert([Document("x", "text", "first, edited"), Document("z", "text", "third")])
    assert (result.inserted, result.updated) == (1, 1)
    assert len(col) == 3 and col.get(["x"])[0].text == "first, edited"
    kept = col.add([Document("y", "text", "would overwrite"), Document("w", "text", "new")])
    assert kept.inserted == 1 and col.get(["y"])[0].text == "second"
    assert [d.id for d in col.get(["z", "nope", "x"])] == ["z", "x"]
    assert col.delete(["x", "nope"]) == 1 and len(col) == 3 and "x" not in col and "y" in col


def test_collection_records_its_model_and_refuses_others(tmp_path):
    path = tmp_path / "rec.lance"
    Collection(path, model=tiny_model()).add_texts(["hello"])
    reopened = Collection(path)  # no model given: the recorded one
    assert (reopened.info.model, reopened.info.dim) == ("tiny-random", 64)
    with pytest.raises(ModelMismatchError, match="holds vectors of model 'tiny-random'.*tiny-random-llama"):
        Collection(path, model="tiny-random-llama")
    with pytest.raises(ModelMismatchError, match=r"shape \(1, 32\)"):
        reopened.upsert([Document("v", "text", "v")], np.ones((1, 32), np.float32))
    with pytest.raises(ModelMismatchError, match="stores 64-d vectors; dim=16"):
        Collection(path, dim=16)


def test_unknown_collection_is_a_clear_error(tmp_path):
    with pytest.raises(CollectionNotFoundError, match="no collection at .*mmembed index"):
        Collection(tmp_path / "missing.lance", create=False)
    assert not (tmp_path / "missing.lance").exists()  # looking did not create it


def test_matryoshka_collection_stores_truncated_vectors(tmp_path):
    col = Collection(tmp_path / "m.lance", model=tiny_model(), dim=16)
    col.add_texts(["uno", "dos", "tres"])
    assert col.info.dim == 16 and col.vectors([col.search("dos", k=1)[0].document.id]).shape == (1, 16)
    expected = tiny_model().encode_text(["dos"], dim=16)[0]
    assert col.search(expected, k=1)[0].document.text == "dos"


def test_ann_index_past_threshold_keeps_recall(tmp_path):
    dim, n = 32, 3000
    vectors = clustered(n, dim, seed=0)
    col = Collection(tmp_path / "ann.lance", model=VectorsOnly(dim), ann_threshold=2000)
    col.append([Document(str(i), "text", f"row {i}") for i in range(n)], vectors)
    assert not col.has_index
    assert col.ensure_index() and col.has_index
    queries = clustered(30, dim, seed=1)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([
        len({int(h.document.id) for h in col.search_vector(q, 10)} & set(t)) / 10 for q, t in zip(queries, truth)
    ])
    exact = [int(h.document.id) for h in col.search_vector(queries[0], 10, exact=True)]
    assert exact == list(truth[0])
    assert recall >= 0.9, f"ANN recall@10 {recall:.3f} against exact"
    filtered = col.search_vector(queries[0], 5, where="id IN ('1', '2', '3')")
    assert sorted(h.document.id for h in filtered) == ["1", "2", "3"]


def test_a_retrained_or_changed_model_of_the_same_name_is_refused(tmp_path):
    import torch

    from mmembed.search.info import CollectionInfo
    from mmembed.serialization import model_fingerprint, save_model

    path = tmp_path / "fp.lance"
    original = mmembed.load("tiny-random")
    Collection(path, model=original).add_texts(["hello", "world"])
    assert Collection(path).info.fingerprint == model_fingerprint(original)  # every fresh load of it matches
    assert len(Collection(path, model=mmembed.load("tiny-random")).search("hello", k=1)) == 1
    # the same weights saved elsewhere under another name: the same space
    save_model(original, tmp_path / "copy")
    assert model_fingerprint(mmembed.load(str(tmp_path / "copy"))) == model_fingerprint(original)
    # the same adapter run in bf16 (as on a GPU) is the same space
    as_bf16 = mmembed.load("tiny-random")
    as_bf16.projector.to(torch.bfloat16)
    assert model_fingerprint(as_bf16) == model_fingerprint(original)
    # "retrained": same name and version, one projector weight moved by 1e-3
    retrained = mmembed.load("tiny-random")
    with torch.no_grad():
        next(retrained.projector.parameters()).view(-1)[0] += 1e-3
    assert (retrained.name, retrained.config.version) == (original.name, original.config.version)
    with pytest.raises(ModelMismatchError, match=r"fingerprint .* embeds differently .*retrained"):
        Collection(path, model=retrained)
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        Collection(path, model=retrained).add_texts(["never written"])
    assert len(Collection(path)) == 2  # nothing was mixed in
    # a collection recorded before fingerprints (no field) is checked by name and version only
    old = CollectionInfo.from_json('{"model": "tiny-random", "model_version": "0", "dim": 64, "format": 1}', "old")
    assert old.fingerprint is None
    old.check_model(retrained, "old")


def test_switching_the_label_prior_off_changes_the_fingerprint(tmp_path):
    from mmembed.config import LabelPriorConfig
    from mmembed.model import MMEmbedModel
    from mmembed.serialization import model_fingerprint

    cfg = mmembed.get_config("tiny-random")
    cfg.label_prior = LabelPriorConfig()
    model = MMEmbedModel(cfg)
    with_prior = model_fingerprint(model)
    model.label_prior = None
    assert model_fingerprint(model) != with_prior


def test_a_bare_string_is_one_item_everywhere(col, tmp_path):
    assert len(col.add_texts("hey", tags="holiday")) == 1 and len(col) == 1
    (doc,) = col.search("hey", k=5)
    assert doc.document.text == "hey" and doc.document.tags == ("holiday",)
    assert Document("t", "text", "x", tags="holiday").tags == ("holiday",)
    assert Document("t", "text", "x", tags=["a", "b", "a"]).tags == ("a", "b")  # no tag twice
    pic = write_png(tmp_path / "one.png", 1)
    (img_id,) = col.add_images(str(pic), captions="one")
    assert col.get(img_id)[0].text == "one" and col.vectors(img_id).shape == (1, 64)
    assert col.delete(img_id) == 1 and len(col) == 1
    with pytest.raises(TypeError, match="ids must be strings"):
        col.delete([1, 2])


def test_writing_nothing_or_with_a_bad_model_creates_nothing(tmp_path):
    empty = tmp_path / "empty.lance"
    col = Collection(empty, model=tiny_model())
    assert col.upsert([]) == WriteResult(0, 0) and col.append([], np.zeros((0, 64), np.float32)) == 0
    assert not empty.exists() and len(col) == 0
    wide = Collection(tmp_path / "wide.lance", model=tiny_model(), dim=999)
    with pytest.raises(ValueError, match=r"dim must be in 1\.\.64 for model 'tiny-random', got 999"):
        wide.add_texts("hello")
    with pytest.raises(ValueError, match=r"dim must be in 1\.\.64"):
        wide.check_writable()  # what `index` asks before any work
    with pytest.raises(ValueError, match="dim must be a positive int"):
        Collection(tmp_path / "zero.lance", dim=0)
    with pytest.raises(UnknownModelError, match="unknown model .no-such-model"):
        Collection(tmp_path / "unknown.lance", model="no-such-model")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_two_different_documents_under_one_id_are_refused(col):
    with pytest.raises(ValueError, match="share the id 'x' but differ"):
        col.upsert([Document("x", "text", "one"), Document("x", "text", "two")])
    assert len(col) == 0
    assert col.upsert([Document("x", "text", "one"), Document("x", "text", "one")]).inserted == 1


def test_search_refuses_empty_queries_bad_vectors_and_bad_k(col):
    col.add_texts(["a red apple", "a fast car", "ein Hund"])
    for query in ("", "   \n"):
        with pytest.raises(ValueError, match="query text is empty"):
            col.search(query)
    vec = np.full(64, np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN or inf"):
        col.search(vec)
    for k in (0, -1, 10**11, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"k must be an int in 1\.\.1,000,000"):
            col.search("apple", k=k)
    assert len(col.search("apple", k=np.int64(2))) == 2


@pytest.mark.parametrize("create", [True, False])
def test_a_regular_file_is_not_a_collection(tmp_path, create):
    path = tmp_path / "c.lance"
    path.write_text("not a table")
    with pytest.raises(CollectionNotFoundError, match="is a regular file, not a collection folder"):
        Collection(path, model=tiny_model(), create=create)
    assert path.read_text() == "not a table"


def test_an_image_query_is_embedded_as_a_query_and_indexed_images_as_documents(tmp_path):
    model = roles_model()
    col = Collection(tmp_path / "c.lance", model=model)
    pic = write_png(tmp_path / "p.png", 0)
    (doc_id,) = col.add_images([pic])
    document, query = model.encode_image([pic])[0], model.encode_image([pic], role="query")[0]
    assert not np.allclose(document, query, atol=1e-3)
    np.testing.assert_allclose(col.vectors([doc_id])[0], document, atol=1e-6)
    np.testing.assert_allclose(col.query_vector(Path(pic)), query, atol=1e-6)
    hit = col.search(Path(pic), k=1)[0]
    assert hit.document.id == doc_id and hit.score == pytest.approx(float(document @ query), abs=1e-5)


def test_a_collection_that_recorded_an_older_fingerprint_of_the_same_model_accepts_it():
    """A config field added later (fit_target, session 36) at the value older saves implied: the fingerprint an older
    mmembed computed (without the field) is still this model's; any other fingerprint is refused."""
    import dataclasses

    from mmembed.search.info import CollectionInfo
    from mmembed.serialization import legacy_fingerprints, model_fingerprint

    model = roles_model()
    (older,) = legacy_fingerprints(model)
    assert older != model_fingerprint(model)
    info = CollectionInfo.for_model(model)
    dataclasses.replace(info, fingerprint=older).check_model(model, "c.lance")  # accepted
    with pytest.raises(ModelMismatchError, match="embeds differently"):
        dataclasses.replace(info, fingerprint="0123456789abcdef").check_model(model, "c.lance")
    model.feature_readout.cfg = dataclasses.replace(model.feature_readout.cfg, fit_target="sum")
    assert legacy_fingerprints(model) == []  # "sum" did not exist before the field: no older fingerprint
    assert legacy_fingerprints(tiny_model()) == []  # no read-out, nothing added later


def test_a_two_sided_text_search_through_the_ann_index(tmp_path):
    """A text query's two vectors (plain, and against images: mmembed/search/facing.py) on an indexed collection of
    texts and pictures: the texts keep the places the plain vector's candidates give them, the pictures come in the
    order the vector against images finds them, through the same index."""
    dim, n = 32, 3000
    vectors = clustered(n, dim, seed=0)
    col = Collection(tmp_path / "mixed-ann.lance", model=VectorsOnly(dim), ann_threshold=2000)
    col.append([Document(str(i), "image", f"row {i}", image=f"/pictures/{i}.png") if i % 3 == 0
                else Document(str(i), "text", f"row {i}") for i in range(n)], vectors)
    assert col.ensure_index() and col.has_index
    plain, facing = clustered(2, dim, seed=5)
    hits = col.search_vector(plain, 30, image_vector=facing)
    alone = col.search_vector(plain, 300)[:30]  # the candidates a two-sided search orders (max(100, 10 k))
    assert len(hits) == 30 and [h.document.kind for h in hits] == [h.document.kind for h in alone]
    assert [(h.rank, h.document.id) for h in hits if h.document.kind == "text"] == \
        [(h.rank, h.document.id) for h in alone if h.document.kind == "text"]
    pictures = [h.document.id for h in hits if h.document.kind == "image"]
    assert pictures and pictures == [h.document.id for h in col.search_vector(facing, 300, kind="image")][:len(pictures)]
    assert pictures != [h.document.id for h in alone if h.document.kind == "image"]
    # a filter reaches both sides
    some = col.search_vector(plain, 10, image_vector=facing, where="CAST(id AS INT) < 1500")
    assert some and all(int(h.document.id) < 1500 for h in some)
