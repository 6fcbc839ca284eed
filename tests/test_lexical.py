"""The lexical channel (mmembed/lexical.py): romanized character n-grams, fusion with cosine scores, and its use
in `mmembed eval --lexical-weight` and `Collection.search(lexical_weight=...)`."""
from __future__ import annotations

import numpy as np
import pytest
from search_fixtures import tiny_model

from mmembed.lexical import LexicalScorer, fuse, rerank, romanize
from mmembed.search.collection import Collection

PLACES = ["Nicaragua", "Nigeria", "Germany", "Moscow", "Mexico"]


def test_romanize_brings_every_script_to_casefolded_latin():
    assert romanize("Нигерия") == "nigeriya"
    assert romanize("नाइजीरिया") == "naijiriya"
    assert romanize("  Москва\n  Сити ") == "moskva siti"
    assert romanize("") == ""


@pytest.mark.parametrize("query, expected", [("नाइजीरिया", "Nigeria"), ("Нигерия", "Nigeria"),
                                             ("Москва", "Moscow"), ("México", "Mexico"), ("Nikaragua", "Nicaragua")])
def test_a_name_in_another_script_scores_highest_on_its_own_spelling(query, expected):
    scores = LexicalScorer(PLACES).scores([query])  # (1, 5)
    assert scores.shape == (1, len(PLACES)) and scores.dtype == np.float32
    assert PLACES[int(np.argmax(scores[0]))] == expected
    assert np.all((scores >= 0) & (scores <= 1 + 1e-6))


def test_no_shared_ngram_and_no_documents_give_zero_scores():
    np.testing.assert_array_equal(LexicalScorer(PLACES).scores(["###"]), np.zeros((1, 5)))
    np.testing.assert_array_equal(LexicalScorer(["", "  "]).scores(["Nigeria"]), np.zeros((1, 2)))
    assert LexicalScorer(PLACES).scores([]).shape == (0, 5)


def test_fuse_keeps_the_dense_order_at_weight_zero_and_without_lexical_evidence():
    dense = np.array([[0.9, 0.5, 0.7], [0.1, 0.3, 0.2]], dtype=np.float32)
    lexical = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    order = np.argsort(-fuse(dense, lexical, 0.0), axis=1)
    np.testing.assert_array_equal(order, np.argsort(-dense, axis=1))
    fused = fuse(dense, lexical, 0.15)
    assert np.argsort(-fused[1]).tolist() == [1, 2, 0]  # a zero lexical row: dense order
    assert np.argmax(fuse(dense, lexical, 5.0)[0]) == 1  # a heavy weight lets the spelling win


def test_fuse_refuses_mismatched_shapes_and_bad_weights():
    with pytest.raises(ValueError, match=r"differ in shape"):
        fuse(np.zeros((2, 3)), np.zeros((3, 2)))
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lexical weight must be a finite number >= 0"):
            fuse(np.zeros((1, 3)), np.zeros((1, 3)), bad)


def test_rerank_moves_the_spelled_match_up_and_breaks_ties_by_dense_order():
    cosines = np.array([0.80, 0.79, 0.78, 0.30, 0.20], dtype=np.float32)  # dense: Nicaragua first
    assert PLACES[rerank("नाइजीरिया", PLACES, cosines)[0]] == "Nigeria"
    np.testing.assert_array_equal(rerank("###", PLACES, cosines), np.arange(5))


def test_collection_search_with_a_lexical_weight_finds_the_name_across_scripts(tmp_path):
    col = Collection(tmp_path / "c.lance", model=tiny_model())
    col.add_texts(PLACES + ["a red apple", "ein Hund"], language="en")
    plain = [h.document.text for h in col.search("Москва", k=7)]
    hits = col.search("Москва", k=3, lexical_weight=5.0)  # the tiny model's cosines are random: a heavy weight
    assert hits[0].document.text == "Moscow" and [h.rank for h in hits] == [1, 2, 3]
    assert {h.document.text for h in hits} <= set(plain)  # re-ordered dense candidates, nothing else
    by_text = {h.document.text: h.score for h in col.search("Москва", k=7)}
    assert all(h.score == pytest.approx(by_text[h.document.text]) for h in hits)  # score stays the cosine
    assert [h.document.text for h in col.search("Москва", k=7, lexical_weight=0.0)] == plain
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="lexical_weight must be a finite number >= 0"):
            col.search("Москва", k=3, lexical_weight=bad)
