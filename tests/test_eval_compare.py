"""Paired bootstrap over concepts (mmembed.evaluation.compare): exact point estimates, honest intervals."""
import numpy as np
import pytest

from mmembed.evaluation.compare import compare_encoders, paired_bootstrap, per_query_values, pool_results
from mmembed.evaluation.runner import TaskResult


def test_per_query_values_average_to_the_metrics():
    ranks = np.array([1, 3, 12, 1, 2])
    assert per_query_values(ranks, "acc").mean() == pytest.approx(0.4)
    assert per_query_values(ranks, "R@10").mean() == pytest.approx(0.8)
    assert per_query_values(ranks, "MRR").mean() == pytest.approx((1 + 1 / 3 + 1 / 12 + 1 + 1 / 2) / 5)
    with pytest.raises(ValueError, match="ndcg"):
        per_query_values(ranks, "ndcg")


def test_identical_encoders_differ_by_exactly_zero():
    a = [np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0])]
    observed, draws = paired_bootstrap(a, a, [["c1", "c2", "c3"], ["c1", "c3"]], draws=200)
    assert observed == 0.0 and np.all(draws == 0.0)


def test_observed_difference_is_the_difference_of_means_over_groups():
    a = [np.array([1.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0])]
    b = [np.array([0.0, 1.0, 0.0, 0.0]), np.array([1.0, 1.0])]
    observed, _ = paired_bootstrap(a, b, [["w", "x", "y", "z"], ["w", "x"]], draws=10)
    assert observed == pytest.approx(((3 / 4 + 1 / 2) - (1 / 4 + 1)) / 2)


def test_interval_matches_the_binomial_standard_error_for_independent_concepts():
    # one group, one query per concept: the bootstrap sd of the paired difference is the textbook one
    rng = np.random.default_rng(0)
    n = 400
    a = (rng.random(n) < 0.8).astype(float)
    b = (rng.random(n) < 0.7).astype(float)
    _, draws = paired_bootstrap([a], [b], [[f"c{i}" for i in range(n)]], draws=4000, seed=1)
    d = a - b
    assert draws.std() == pytest.approx(d.std() / np.sqrt(n), rel=0.1)


def test_concepts_shared_across_languages_widen_the_interval():
    # the same 50 concepts in 6 languages, outcomes identical in every language: 50 independent units, not 300
    rng = np.random.default_rng(0)
    per_concept = (rng.random(50) < 0.5).astype(float)
    concepts = [f"c{i}" for i in range(50)]
    a = [per_concept] * 6
    b = [np.zeros(50)] * 6
    _, clustered = paired_bootstrap(a, b, [concepts] * 6, draws=2000)
    _, naive = paired_bootstrap(a, b, [[f"{g}-{c}" for c in concepts] for g in range(6)], draws=2000)
    assert clustered.std() > 2 * naive.std()


def test_a_group_missing_from_a_draw_is_left_out_of_that_draw():
    a = [np.array([1.0]), np.array([1.0, 1.0])]
    b = [np.array([0.0]), np.array([1.0, 1.0])]
    observed, draws = paired_bootstrap(a, b, [["rare"], ["x", "y"]], draws=500)
    assert observed == pytest.approx(0.5)
    # without "rare" a draw sees only the tied group (0.0); with "rare" and x or y, both groups (0.5);
    # with "rare" alone, only its group (1.0): never NaN
    assert set(np.round(draws, 6)) == {0.0, 0.5, 1.0}


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same, non-zero number of groups"):
        paired_bootstrap([np.ones(2)], [], [["a", "b"]])
    with pytest.raises(ValueError, match="do not match"):
        paired_bootstrap([np.ones(2)], [np.ones(3)], [["a", "b"]])
    with pytest.raises(ValueError, match="draws"):
        paired_bootstrap([np.ones(2)], [np.ones(2)], [["a", "b"]], draws=0)


def _result(encoder, group, ranks, units, task="bitext", status="ok"):
    return TaskResult(encoder, task, "parallel", group, {}, len(ranks), len(ranks), status=status,
                      query_ranks=tuple(ranks), query_units=tuple(units))


def test_compare_encoders_puts_the_model_first_and_skips_what_was_not_scored():
    units = [f"concept:{i}" for i in range(30)]
    strong = [1] * 30
    weak = [1] * 10 + [2] * 20
    results = [_result("model", "de->en", strong, units), _result("model", "en->de", strong, units),
               _result("e5", "de->en", weak, units), _result("e5", "en->de", weak, units),
               _result("other", "de->en", weak, units, status="skipped: no text")]
    (d,) = compare_encoders(results, "model", draws=500)
    assert (d.encoder, d.reference, d.metric) == ("model", "e5", "acc")
    assert d.difference == pytest.approx(2 / 3) and d.low > 0 and d.verdict == "ahead"
    assert d.share_ahead == 1.0 and d.concepts == 30 and d.draws == 500
    (back,) = compare_encoders(results, "e5", draws=500)
    assert back.verdict == "behind" and back.difference == pytest.approx(-2 / 3)
    retrieval = compare_encoders([_result("model", "de", strong, units, task="t2i"),
                                  _result("e5", "de", strong, units, task="t2i")], "model", draws=50)
    assert [(d.metric, d.verdict) for d in retrieval] == [("R@1", "level"), ("R@10", "level")]


def test_pooled_sets_are_scored_as_one_with_units_kept_apart():
    """Two small sets pooled: per-language metrics from all their queries, units `dataset/concept` (the same
    concept id in two sets is two units), ranks as each set gave them; comparisons run on the pool too."""
    def res(encoder, dataset, group, ranks, units):
        return TaskResult(encoder, "t2i", dataset, group, {"R@1": 0.0, "R@10": 0.0, "MRR": 0.0}, len(ranks), 10,
                          query_ranks=tuple(ranks), query_units=tuple(units))
    results = [res("model", "photos", "en", [1, 2, 1], ["a", "b", "c"]), res("model", "scenes", "en", [1, 11], ["a", "d"]),
               res("model", "scenes", "sw", [3], ["d"]), res("model", "other", "en", [1], ["z"]),
               res("base", "photos", "en", [2, 2, 2], ["a", "b", "c"]), res("base", "scenes", "en", [2, 2], ["a", "d"]),
               res("base", "scenes", "sw", [1], ["d"]),
               TaskResult("base", "t2i", "photos", "sw", {}, 1, 10, status="skipped: no images")]
    pooled = {(r.encoder, r.group): r for r in pool_results(results, {"all": ["photos", "scenes"]})}
    assert set(pooled) == {("model", "en"), ("model", "sw"), ("base", "en"), ("base", "sw")}
    en = pooled["model", "en"]
    assert (en.dataset, en.task, en.n_queries, en.n_targets) == ("all", "t2i", 5, 20)
    assert en.query_ranks == (1, 2, 1, 1, 11) and en.query_units[-2:] == ("scenes/a", "scenes/d")
    assert en.metrics == {"R@1": 0.6, "R@10": 0.8, "MRR": pytest.approx((1 + 0.5 + 1 + 1 + 1 / 11) / 5, abs=1e-6)}
    assert "photos, scenes" in en.note
    diffs = {(d.dataset, d.metric): d for d in compare_encoders(results + list(pooled.values()), "model", draws=200)}
    assert diffs["all", "R@1"].concepts == 5  # photos/a and scenes/a are different units
    assert diffs["all", "R@1"].difference == pytest.approx(((3 / 5 - 0) + (0 - 1)) / 2)
