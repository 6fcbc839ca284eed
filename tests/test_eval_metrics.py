"""Ranking metrics against hand-computed values."""
import numpy as np
import pytest

from mmembed.evaluation.metrics import (
    first_relevant_rank,
    mean_reciprocal_rank,
    recall_at_k,
    relevance_from_keys,
    retrieval_metrics,
    top1_accuracy,
)

SIM = np.array([[0.9, 0.1, 0.5],
                [0.2, 0.3, 0.8],
                [0.4, 0.6, 0.1]])


def test_ranks_one_correct_target_each():
    # q0: 0.9 beats all -> 1; q1: 0.3 under 0.8 -> 2; q2: 0.1 under 0.4 and 0.6 -> 3
    assert first_relevant_rank(SIM, np.eye(3, dtype=bool)).tolist() == [1, 2, 3]


def test_retrieval_metrics_hand_computed():
    m = retrieval_metrics(SIM, np.eye(3, dtype=bool), ks=(1, 2, 5))
    assert m["R@1"] == pytest.approx(1 / 3)
    assert m["R@2"] == pytest.approx(2 / 3)
    assert m["R@5"] == pytest.approx(1.0)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_several_correct_targets_use_the_best_one():
    sim = np.array([[0.5, 0.2, 0.4, 0.45]])
    relevant = np.array([[False, True, True, False]])
    # best correct is 0.4 (target 2); wrong targets 0.5 and 0.45 are above it -> rank 3
    assert first_relevant_rank(sim, relevant).tolist() == [3]
    assert mean_reciprocal_rank(np.array([3])) == pytest.approx(1 / 3)


def test_ties_count_against_the_model():
    sim = np.ones((2, 3))
    relevant = np.array([[True, False, False], [False, False, True]])
    assert first_relevant_rank(sim, relevant).tolist() == [3, 3]  # not 1, whatever the target order
    assert top1_accuracy(sim, relevant) == 0.0


def test_top1_accuracy_and_recall():
    sim = np.array([[0.1, 0.9], [0.8, 0.7], [0.3, 0.2]])
    relevant = np.array([[False, True], [False, True], [True, False]])
    assert top1_accuracy(sim, relevant) == pytest.approx(2 / 3)
    assert recall_at_k(np.array([1, 2, 11, 4]), 10) == pytest.approx(3 / 4)


def test_relevance_from_keys_shares_any_key():
    q = [("concept:a", "text:x"), ("concept:b",)]
    t = [("concept:a",), ("concept:c", "text:x"), ("concept:b",)]
    assert relevance_from_keys(q, t).tolist() == [[True, True, False], [False, False, True]]


@pytest.mark.parametrize(
    "sim, relevant, match",
    [
        (np.zeros((2, 2)), np.array([[True, False], [False, False]]), "no correct target"),
        (np.zeros((2, 3)), np.eye(2, dtype=bool), "same 2-d shape"),
        (np.array([[np.nan, 0.0]]), np.array([[True, False]]), "NaN"),
    ],
)
def test_bad_inputs_raise(sim, relevant, match):
    with pytest.raises(ValueError, match=match):
        first_relevant_rank(sim, relevant)


def test_recall_rejects_k_zero():
    with pytest.raises(ValueError, match="k must be"):
        recall_at_k(np.array([1]), 0)
