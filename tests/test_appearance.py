"""Appearance (the image tower's pooled features) and image -> image search that fuses it with the cosine."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from search_fixtures import VectorsOnly, tiny_model, write_png

from mmembed.appearance import DEFAULT_APPEARANCE_WEIGHT, appearance_dim, check_appearance_weight, fuse_appearance
from mmembed.feature_readout import pooled_features
from mmembed.images import ImageInputError
from mmembed.search import query as query_module
from mmembed.search.collection import Collection
from mmembed.search.documents import Document
from mmembed.search.info import APPEARANCE, CollectionInfo, table_schema
from mmembed.search.looks import fused_order


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("looks")
    return [write_png(root / f"p{i}.png", i, size=(48 + 4 * i, 40)) for i in range(8)]


def test_encode_appearance_is_the_towers_pooled_features_in_input_order(pictures):
    model = tiny_model()
    looks = model.encode_appearance(pictures, batch_size=3)
    assert looks.shape == (len(pictures), appearance_dim(model)) and looks.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(looks, axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        pooled = pooled_features(model.image_tower.eval().forward_features(model.pixels(pictures)))
    np.testing.assert_allclose(looks, torch.nn.functional.normalize(pooled, dim=-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(model.encode_appearance(pictures[::-1], batch_size=1), looks[::-1], atol=1e-5)
    assert model.encode_appearance([]).shape == (0, appearance_dim(model))


def test_encode_appearance_names_a_bad_image_and_a_model_without_a_tower(pictures, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageInputError, match="#2"):
        tiny_model().encode_appearance([pictures[0], pictures[1], bad])
    class NoTower:
        name, image_tower = "text-only", None

    with pytest.raises(RuntimeError, match="text-only.*no image tower"):
        appearance_dim(NoTower())


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_a_bad_appearance_weight_is_refused_with_its_value(weight):
    with pytest.raises(ValueError, match="appearance_weight must be a number in \\[0, 1\\]"):
        check_appearance_weight(weight)


def test_fuse_appearance_weighs_the_two_cosines():
    cos, looks = np.array([[0.2, 0.8]]), np.array([[0.9, 0.1]])
    np.testing.assert_allclose(fuse_appearance(cos, looks, 0.5), [[0.55, 0.45]])
    np.testing.assert_allclose(fuse_appearance(cos, looks, 0.0), cos)
    np.testing.assert_allclose(fuse_appearance(cos, looks, 1.0), looks)
    with pytest.raises(ValueError, match="differ in shape"):
        fuse_appearance(cos, looks.T, 0.5)
    assert 0 < DEFAULT_APPEARANCE_WEIGHT < 1


# ---- collections -------------------------------------------------------------------------------
@pytest.fixture()
def looks_col(tmp_path, pictures):
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.add_texts(["a red apple", "ein Hund"])
    col.add_images(pictures)
    return col


def _expected_order(col: Collection, query: Path, weight: float) -> list[str]:
    """Brute force from the stored vectors and appearances: rows by cosine; the places images hold there go to the
    images by fused score, texts keep theirs."""
    model = tiny_model()
    ids = [d.id for d in col.get(_all_ids(col))]
    cos = col.vectors(ids) @ model.encode_image([query], role="query")[0]
    q = model.encode_appearance([query])[0]
    looks = col.appearances(ids)
    by_cosine = [ids[i] for i in np.argsort(-cos, kind="stable")]
    fused = {i: (1 - weight) * c + weight * float(a @ q) for i, c, a in zip(ids, cos, looks) if a is not None}
    images = iter(sorted(fused, key=lambda i: -fused[i]))
    return [next(images) if i in fused else i for i in by_cosine]


def test_fused_order_refills_the_image_places_of_the_cosine_order():
    cosine = np.array([0.9, 0.8, 0.7, 0.6, 0.5])  # rows 0 and 2 are texts
    look = np.array([0.0, 0.1, 0.0, 0.99, 0.5])
    has_look = np.array([False, True, False, True, True])
    # image places 1, 3, 4; fused: row 1 0.45, row 3 0.795, row 4 0.5
    assert fused_order(cosine, look, has_look, 0.5).tolist() == [0, 3, 2, 4, 1]
    assert fused_order(cosine, look, has_look, 0.0).tolist() == [0, 1, 2, 3, 4]
    assert fused_order(cosine, look, np.ones(5, bool), 1.0).tolist() == [3, 4, 1, 0, 2]  # images alone: fused order


def test_texts_keep_their_places_among_images_for_an_image_query(looks_col, pictures):
    """The look's cosine is not on the shared space's scale; it re-orders images, never images against texts."""
    query = pictures[2]
    cosine = [h.document.kind for h in looks_col.search(query, k=10, appearance_weight=0, exact=True)]
    for weight in (DEFAULT_APPEARANCE_WEIGHT, 1.0):
        hits = looks_col.search(query, k=10, appearance_weight=weight, exact=True)
        assert [h.document.kind for h in hits] == cosine
    images = [h.document.id for h in looks_col.search(query, k=10, kind="image", appearance_weight=1.0)]
    q = tiny_model().encode_appearance([query])[0]
    looks = looks_col.appearances(images)
    assert [float(a @ q) for a in looks] == sorted((float(a @ q) for a in looks), reverse=True)


def _all_ids(col: Collection) -> list[str]:
    return [r["id"] for r in col._rows("true", ["id"])]


def test_image_rows_keep_their_appearance_and_texts_none(looks_col, pictures):
    assert APPEARANCE in looks_col._table.schema.names and looks_col.appearance_dim == appearance_dim(tiny_model())
    docs = looks_col.get(_all_ids(looks_col))
    looks = looks_col.appearances([d.id for d in docs])
    for d, a in zip(docs, looks):
        if d.kind == "text":
            assert a is None
        else:
            np.testing.assert_allclose(a, tiny_model().encode_appearance([Path(d.image)])[0], atol=1e-5)


@pytest.mark.parametrize("weight", [0.0, DEFAULT_APPEARANCE_WEIGHT, 1.0])
def test_an_image_query_ranks_by_the_fused_score(looks_col, pictures, weight):
    query = pictures[3]
    hits = looks_col.search(query, k=10, appearance_weight=weight, exact=True)
    assert [h.document.id for h in hits] == _expected_order(looks_col, query, weight)
    vec = tiny_model().encode_image([query], role="query")[0]
    for h in hits:  # a hit's score stays its cosine, as with the lexical channel
        assert h.score == pytest.approx(float(looks_col.vectors([h.document.id])[0] @ vec), abs=1e-5)


def test_fusion_changes_the_order_and_the_default_weight_applies(looks_col, pictures):
    query = pictures[5]
    plain = [h.document.id for h in looks_col.search(query, k=10, kind="image", appearance_weight=0)]
    looks_only = [h.document.id for h in looks_col.search(query, k=10, kind="image", appearance_weight=1)]
    assert plain != looks_only  # otherwise the tests above would not tell the channels apart
    default = [h.document.id for h in looks_col.search(query, k=10)]
    assert default == _expected_order(looks_col, query, DEFAULT_APPEARANCE_WEIGHT)
    # a text query, and a vector, are ranked by cosine alone
    vec = looks_col.vectors([plain[0]])[0]
    assert looks_col.search(vec, k=1)[0].document.id == plain[0]


def test_an_image_found_only_by_its_appearance_is_a_candidate(looks_col, pictures, monkeypatch):
    query = pictures[6]
    monkeypatch.setattr(query_module, "APPEARANCE_CANDIDATES", 1)  # one candidate per channel (k = 1)
    (hit,) = looks_col.search(query, k=1, kind="image", appearance_weight=1.0)
    assert hit.document.id == _expected_order(looks_col, query, 1.0)[0]


def test_filters_apply_to_both_channels(looks_col, pictures):
    hits = looks_col.search(pictures[0], k=10, kind="text")
    assert {h.document.kind for h in hits} == {"text"} and len(hits) == 2
    assert looks_col.search(pictures[0], k=5, where="kind = 'nothing'") == []


def test_ready_made_vectors_store_the_appearances_given(tmp_path, pictures):
    col = Collection(tmp_path / "r.lance", model=tiny_model())
    docs = [Document(f"img{i}", "image", image=str(p)) for i, p in enumerate(pictures[:3])]
    vecs = tiny_model().encode_image(pictures[:3])
    looks = tiny_model().encode_appearance(pictures[:3])
    col.upsert(docs, vecs, [looks[0], None, looks[2]])
    got = col.appearances(["img0", "img1", "img2"])
    np.testing.assert_allclose(got[0], looks[0])
    np.testing.assert_allclose(got[2], looks[2])
    assert got[1] is None
    with pytest.raises(ValueError, match=r"appearance row #1 \(document 'img1'\) must be \d+ finite numbers"):
        col.upsert(docs, vecs, [looks[0], looks[1][:5], None])
    with pytest.raises(ValueError, match="3 appearance rows given for 2 documents"):
        col.upsert(docs[:2], vecs[:2], [None, None, None])
    with pytest.raises(ValueError, match="only images have one"):
        col.upsert([Document("t", "text", "x")], tiny_model().encode_text(["x"]), [looks[0]])
    with pytest.raises(ValueError, match="without vectors"):
        col.upsert(docs, None, [None] * 3)
    np.testing.assert_allclose(col.appearances(["img0"])[0], looks[0])  # nothing was written by the refused calls
    with pytest.raises(KeyError, match="no rows with ids"):
        col.appearances(["img0", "nope"])


def test_a_collection_without_an_appearance_column_is_searched_by_cosine(tmp_path, pictures):
    import lancedb

    model = tiny_model()
    path = tmp_path / "format1.lance"
    info = CollectionInfo.for_model(model)
    info = CollectionInfo(info.model, info.model_version, info.dim, format=1, fingerprint=info.fingerprint)
    lancedb.connect(path).create_table("items", schema=table_schema(info))  # as mmembed before format 2 made it
    col = Collection(path, model=model)
    col.add_images(pictures)
    assert col.appearance_dim is None and col.appearances([_all_ids(col)[0]]) == [None]
    fused = [h.document.id for h in col.search(pictures[2], k=8)]
    plain = [h.document.id for h in col.search(pictures[2], k=8, appearance_weight=0)]
    assert fused == plain


def test_a_model_without_a_tower_makes_no_appearance_column(tmp_path):
    col = Collection(tmp_path / "v.lance", model=VectorsOnly(dim=8))
    col.upsert([Document("a", "text", "x")], np.eye(8, dtype=np.float32)[:1])
    assert APPEARANCE not in col._table.schema.names and col.appearance_dim is None


def test_the_ann_index_covers_the_appearances(tmp_path):
    rng = np.random.default_rng(0)
    model = tiny_model()
    col = Collection(tmp_path / "ann.lance", model=model, ann_threshold=256)
    c, n = appearance_dim(model), 300
    docs = [Document(f"i{i}", "image", image=f"/nowhere/{i}.png") for i in range(n)]
    vecs = rng.normal(size=(n, col.dim)).astype(np.float32)
    looks = rng.normal(size=(n, c)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    looks /= np.linalg.norm(looks, axis=1, keepdims=True)
    col.append(docs, vecs, list(looks))
    assert col.ensure_index()
    assert {tuple(ix.columns) for ix in col._table.list_indices()} >= {("vector",), (APPEARANCE,)}
    hits = col.search_vector(vecs[7], 1, appearance=looks[7], appearance_weight=1.0)
    assert hits[0].document.id == "i7"
    with pytest.raises(ValueError, match="query appearance must be"):
        col.search_vector(vecs[7], 1, appearance=looks[7][:4])


def test_a_collection_can_keep_no_appearances(tmp_path, pictures):
    col = Collection(tmp_path / "lean.lance", model=tiny_model(), appearance=False)
    col.add_images(pictures[:4])
    assert APPEARANCE not in col._table.schema.names and col.appearance_dim is None
    plain = [h.document.id for h in col.search(pictures[5], k=4, appearance_weight=0)]
    assert [h.document.id for h in col.search(pictures[5], k=4)] == plain
    # the flag decides a new collection's columns only: an existing one keeps what it has
    assert Collection(tmp_path / "lean.lance", model=tiny_model(), appearance=True).appearance_dim is None


def test_indexing_runs_each_image_through_the_tower_once(tmp_path, pictures, monkeypatch):
    """The look comes from the tower pass that embeds the image (a second pass cost 1.53x the indexing time)."""
    model = tiny_model()
    tower, seen = model.image_tower, []
    real = tower.forward_features
    monkeypatch.setattr(tower, "forward_features", lambda x: seen.append(len(x)) or real(x))
    col = Collection(tmp_path / "once.lance", model=model, batch_size=3)
    report = col.index_paths([pictures[0].parent], progress=False)
    assert report.inserted == len(pictures) and sum(seen) == len(pictures)
    ids = [r["id"] for r in col._rows("true", ["id"])]
    np.testing.assert_allclose(np.stack(col.appearances(ids)), model.encode_appearance([Path(d.image) for d in col.get(ids)]),
                               atol=1e-5)
    seen.clear()
    col.search(pictures[1], k=3)  # an image query: one pass gives its vector and its look
    assert seen == [1]


def test_encode_image_and_appearance_equals_the_two_calls(pictures):
    model = tiny_model()
    emb, looks = model.encode_image_and_appearance(pictures[:5], batch_size=2, role="query", dim=32)
    np.testing.assert_allclose(emb, model.encode_image(pictures[:5], role="query", dim=32), atol=1e-5)
    np.testing.assert_allclose(looks, model.encode_appearance(pictures[:5]), atol=1e-5)


def test_fixed_rows_reads_null_rows_and_sliced_chunks_in_place():
    import pyarrow as pa

    from mmembed.search.looks import fixed_rows

    values = np.arange(12, dtype=np.float32)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(values), 3, mask=pa.array([False, True, False, False]))
    rows, valid = fixed_rows(pa.chunked_array([arr.slice(2), arr.slice(0, 2)]))  # offsets and a null row
    assert valid.tolist() == [True, True, True, False]
    np.testing.assert_array_equal(rows[[0, 1, 2]], values.reshape(4, 3)[[2, 3, 0]])
    rows, valid = fixed_rows(arr.slice(1, 2))
    assert valid.tolist() == [False, True] and rows[1].tolist() == [6, 7, 8]
