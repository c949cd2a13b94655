"""Metrics: exact values on hand-computed examples, and invariants against a slow reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarec.evaluation.metrics import (
    accuracy,
    compute_metrics,
    f1_at_k,
    hit_rate_at_k,
    mae,
    mae_rounded,
    ndcg_at_k,
    precision_at_k,
    rating_levels,
    recall_at_k,
    rmse,
    round_to_levels,
)

LOG3 = math.log2(3)
LOG5 = math.log2(5)


# --- rating metrics --------------------------------------------------------------------------

def test_mae_rmse_exact():
    true = np.array([1.0, 2.0, 3.0])
    pred = np.array([2.0, 2.0, 5.0])
    assert mae(true, pred) == pytest.approx(1.0)  # (1 + 0 + 2) / 3
    assert rmse(true, pred) == pytest.approx(math.sqrt(5 / 3))  # sqrt((1 + 0 + 4) / 3)


def test_accuracy_like_dislike():
    true = np.array([5.0, 3.0, 4.0, 1.0])
    pred = np.array([4.2, 4.0, 3.9, 1.0])
    # likes: true T F T F, pred T T F F -> agree on rows 0 and 3
    assert accuracy(true, pred) == pytest.approx(0.5)
    # threshold 3: true T T T F, pred T T T F
    assert accuracy(true, pred, threshold=3.0) == pytest.approx(1.0)


def test_rating_metrics_ignore_unrated_rows():
    true = np.array([1.0, np.nan, 3.0])
    pred = np.array([2.0, 100.0, 3.0])
    assert mae(true, pred) == pytest.approx(0.5)
    assert rmse(true, pred) == pytest.approx(math.sqrt(0.5))
    assert accuracy(true, pred) == pytest.approx(1.0)


def test_ranking_metrics_empty_are_nan():
    empty = np.array([])
    for metric in (ndcg_at_k, precision_at_k, recall_at_k, f1_at_k, hit_rate_at_k):
        assert math.isnan(metric(empty, empty, empty, 3)), metric.__name__
    frame = pd.DataFrame({"user": empty, "item": empty, "true": empty, "pred": empty})
    out = compute_metrics(frame, ks=(3,))
    assert all(math.isnan(v) for v in out.values()), out


def test_rating_metrics_empty_is_nan():
    assert math.isnan(mae(np.array([]), np.array([])))
    assert math.isnan(rmse(np.array([np.nan]), np.array([1.0])))


def test_rating_metrics_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        mae(np.array([1.0, 2.0]), np.array([1.0]))


def test_rating_levels_of_discrete_and_continuous_scales():
    assert rating_levels(np.array([4.0, 1.0, 5.0, 4.0, np.nan])).tolist() == [1.0, 4.0, 5.0]
    half_stars = np.arange(1, 11) / 2
    assert rating_levels(half_stars[::-1]).tolist() == half_stars.tolist()
    assert rating_levels(np.linspace(0.0, 1.0, 50)) is None  # continuous: no levels
    assert rating_levels(np.array([np.nan])) is None


def test_round_to_levels_by_hand():
    stars = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    pred = np.array([0.2, 1.49, 1.5, 3.7, 4.5, 5.6, np.nan])
    # below the scale -> 1; 1.49 nearer 1; 1.5 equally near -> the higher; above -> 5
    np.testing.assert_array_equal(round_to_levels(pred, stars),
                                  [1.0, 1.0, 2.0, 4.0, 5.0, 5.0, np.nan])
    half = np.arange(1, 11) / 2
    np.testing.assert_array_equal(round_to_levels(np.array([3.7, 3.76, 0.1]), half),
                                  [3.5, 4.0, 0.5])
    np.testing.assert_array_equal(round_to_levels(np.array([0.0, 9.0]), np.array([3.0])),
                                  [3.0, 3.0])


def test_mae_rounded_exact():
    stars = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    true = np.array([4.0, 4.0, 3.0, 5.0, np.nan])
    pred = np.array([3.6, 4.4, 3.6, 4.4, 1.0])
    # raw: (0.4 + 0.4 + 0.6 + 0.6) / 4 = 0.5; rounded 4, 4, 4, 4: (0 + 0 + 1 + 1) / 4
    assert mae(true, pred) == pytest.approx(0.5)
    assert mae_rounded(true, pred, stars) == pytest.approx(0.5)
    # Where the ratings sit at the median of what a score says, rounding wins:
    true = np.array([4.0, 4.0, 4.0, 5.0, 3.0])
    pred = np.full(5, 3.9)
    assert mae(true, pred) == pytest.approx((0.1 * 3 + 1.1 + 0.9) / 5)
    assert mae_rounded(true, pred, stars) == pytest.approx(2 / 5)
    assert math.isnan(mae_rounded(np.array([np.nan]), np.array([1.0]), stars))


# --- nDCG ------------------------------------------------------------------------------------

def test_ndcg_three_items_by_hand():
    user = np.array([7, 7, 7])
    true = np.array([3.0, 5.0, 1.0])
    pred = np.array([0.9, 0.5, 0.1])  # ranked: 3, 5, 1; ideal: 5, 3, 1
    dcg = (2**3 - 1) / 1 + (2**5 - 1) / LOG3 + (2**1 - 1) / 2  # 7 + 31/log2(3) + 1/2
    idcg = (2**5 - 1) / 1 + (2**3 - 1) / LOG3 + (2**1 - 1) / 2  # 31 + 7/log2(3) + 1/2
    assert ndcg_at_k(user, true, pred, 3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(user, true, pred, 3) == pytest.approx(0.753381, abs=1e-6)
    assert ndcg_at_k(user, true, pred, 1) == pytest.approx(7 / 31)
    linear = (3 + 5 / LOG3 + 1 / 2) / (5 + 3 / LOG3 + 1 / 2)
    assert ndcg_at_k(user, true, pred, 3, gain="linear") == pytest.approx(linear)
    assert ndcg_at_k(user, true, pred, 3, gain="linear") == pytest.approx(0.900154, abs=1e-6)
    assert ndcg_at_k(user, true, pred, 1, gain="linear") == pytest.approx(3 / 5)
    # k beyond the number of candidates: the same as k = 3
    assert ndcg_at_k(user, true, pred, 10) == pytest.approx(dcg / idcg)


def test_ndcg_averages_over_users_and_skips_zero_idcg():
    user = np.array([1, 1, 2, 2, 3, 3])
    true = np.array([5.0, 1.0, 1.0, 5.0, np.nan, np.nan])
    pred = np.array([2.0, 1.0, 2.0, 1.0, 2.0, 1.0])
    # user 1 perfect (1.0); user 2 reversed: (1 + 31/log2 3) / (31 + 1/log2 3); user 3 skipped
    user2 = (1 + 31 / LOG3) / (31 + 1 / LOG3)
    assert ndcg_at_k(user, true, pred, 2) == pytest.approx((1.0 + user2) / 2)


def test_ndcg_over_all_candidates_unrated_gain_zero():
    user = np.zeros(4, dtype=int)
    true = np.array([np.nan, 5.0, np.nan, 3.0])
    pred = np.array([0.9, 0.8, 0.7, 0.1])
    dcg = 31 / LOG3 + 7 / LOG5  # ranks 2 and 4
    idcg = 31 + 7 / LOG3
    assert ndcg_at_k(user, true, pred, 4) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(user, true, pred, 1) == pytest.approx(0.0)


def test_nan_predictions_rank_last():
    user = np.array([0, 0])
    true = np.array([5.0, 1.0])
    assert ndcg_at_k(user, true, np.array([np.nan, 0.0]), 1) == pytest.approx(1 / 31)


def test_interleaved_users_equal_grouped_users():
    user = np.array([1, 2, 1, 2, 1])
    true = np.array([5.0, 4.0, 2.0, 1.0, 3.0])
    pred = np.array([0.1, 0.2, 0.9, 0.8, 0.5])
    order = np.argsort(user, kind="stable")
    for k in (1, 2, 3):
        assert ndcg_at_k(user, true, pred, k) == pytest.approx(
            ndcg_at_k(user[order], true[order], pred[order], k))
        assert recall_at_k(user, true, pred, k) == pytest.approx(
            recall_at_k(user[order], true[order], pred[order], k))


def test_bad_arguments():
    user, true, pred = np.array([0]), np.array([5.0]), np.array([1.0])
    with pytest.raises(ValueError, match="gain"):
        ndcg_at_k(user, true, pred, 1, gain="log")
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(user, true, pred, 0)
    with pytest.raises(ValueError, match="one length"):
        ndcg_at_k(user, np.array([5.0, 4.0]), pred, 1)


# --- ties: every metric is its expectation over the orders of each tie group -----------------

def test_all_tied_each_candidate_at_each_rank_with_equal_chance():
    """One user, every score equal, true [5, 1, 1] (relevant: the 5): each candidate sits at
    each rank with chance 1/3, whatever the row order."""
    user = np.zeros(3, dtype=int)
    pred = np.ones(3)
    for true in ([5.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 5.0]):
        true = np.array(true)
        # DCG@1 = the mean gain (31 + 1 + 1) / 3 = 11; IDCG@1 = 31
        assert ndcg_at_k(user, true, pred, 1) == pytest.approx(11 / 31)
        # every rank holds the mean gain 11
        assert ndcg_at_k(user, true, pred, 3) == pytest.approx(
            11 * (1 + 1 / LOG3 + 1 / 2) / (31 + 1 / LOG3 + 1 / 2))
        assert ndcg_at_k(user, true, pred, 1, gain="linear") == pytest.approx((7 / 3) / 5)
        # the relevant item is in the top 1 with chance 1/3, in the top 2 with chance 2/3
        args = (user, true, pred)
        assert precision_at_k(*args, 1) == pytest.approx(1 / 3)
        assert recall_at_k(*args, 1) == pytest.approx(1 / 3)
        assert f1_at_k(*args, 1) == pytest.approx(1 / 3)  # 2 (1/3)(1/3) / (2/3)
        assert hit_rate_at_k(*args, 1) == pytest.approx(1 / 3)  # 1 - C(2, 1) / C(3, 1)
        assert precision_at_k(*args, 2) == pytest.approx((2 / 3) / 2)
        assert recall_at_k(*args, 2) == pytest.approx(2 / 3)
        assert f1_at_k(*args, 2) == pytest.approx(4 / 9)  # 2 (1/3)(2/3) / (1/3 + 2/3)
        assert hit_rate_at_k(*args, 2) == pytest.approx(2 / 3)  # 1 - C(2, 2) / C(3, 2)
        assert hit_rate_at_k(*args, 3) == pytest.approx(1.0)


def test_a_tie_group_inside_the_ranking():
    """Ranks 0 | 1, 2, 3 tied | 4, with true 1 | 5, 4, 1 | 5 (relevant: the 5s and the 4)."""
    user = np.zeros(5, dtype=int)
    true = np.array([5.0, 1.0, 4.0, 1.0, 5.0])
    pred = np.array([2.0, 3.0, 2.0, 2.0, 1.0])
    args = (user, true, pred)
    # k = 2: one place of the three tied ranks, holding their mean gain (31 + 15 + 1) / 3
    dcg = 1 + (47 / 3) / LOG3
    assert ndcg_at_k(*args, 2) == pytest.approx(dcg / (31 + 31 / LOG3))
    # k = 4, linear gain: the tied ranks 1..3 each hold the mean gain (5 + 4 + 1) / 3
    dcg = 1 + (10 / 3) * (1 / LOG3 + 1 / 2 + 1 / LOG5)
    assert ndcg_at_k(*args, 4, gain="linear") == pytest.approx(
        dcg / (5 + 5 / LOG3 + 4 / 2 + 1 / LOG5))
    # k = 1: the untied top item is irrelevant
    assert precision_at_k(*args, 1) == 0.0 and hit_rate_at_k(*args, 1) == 0.0
    # k = 2: 2 relevant of the 3 tied, one place: 2/3 expected hits
    assert precision_at_k(*args, 2) == pytest.approx((2 / 3) / 2)
    assert recall_at_k(*args, 2) == pytest.approx((2 / 3) / 3)
    assert f1_at_k(*args, 2) == pytest.approx(2 * (2 / 3) / (2 + 3))  # 2 H / (k + |Rel|)
    assert hit_rate_at_k(*args, 2) == pytest.approx(1 - 1 / 3)  # 1 - C(1, 1) / C(3, 1)
    # k = 3: two places; the one irrelevant tied item cannot fill both
    assert precision_at_k(*args, 3) == pytest.approx((4 / 3) / 3)
    assert hit_rate_at_k(*args, 3) == 1.0  # 1 - C(1, 2) / C(3, 2) = 1 - 0
    # k = 5: every candidate is in
    assert recall_at_k(*args, 5) == pytest.approx(1.0)


def test_hit_rate_of_a_large_straddling_tie_group():
    # an irrelevant leader, then 10 tied with 3 relevant, k = 5: 4 of the 10 make the top 5
    user = np.zeros(11, dtype=int)
    true = np.array([1.0] + [5.0] * 3 + [1.0] * 7)
    pred = np.array([9.0] + [0.0] * 10)
    expected = 1 - math.comb(7, 4) / math.comb(10, 4)  # = 1 - 35/210 = 5/6
    assert hit_rate_at_k(user, true, pred, 5) == pytest.approx(expected)
    assert hit_rate_at_k(user, true, pred, 5) == pytest.approx(5 / 6)
    assert precision_at_k(user, true, pred, 5) == pytest.approx(3 * (4 / 10) / 5)
    # a relevant leader is a sure hit, whatever the tie below it
    true[0] = 5.0
    assert hit_rate_at_k(user, true, pred, 5) == 1.0
    # and a tie group that starts at rank k is out of reach
    assert hit_rate_at_k(user, np.array([1.0] + [5.0] * 10), pred, 1) == 0.0


def test_ties_stay_within_a_user():
    user = np.array([0, 1, 0, 1, 2])
    true = np.array([5.0, 5.0, 1.0, 1.0, 5.0])
    pred = np.ones(5)  # equal across users too; user 2 has one candidate: no tie
    # users 0 and 1: DCG@1 = (31 + 1) / 2 = 16 of 31; user 2: 1
    assert ndcg_at_k(user, true, pred, 1) == pytest.approx((16 / 31 + 16 / 31 + 1) / 3)
    assert hit_rate_at_k(user, true, pred, 1) == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)


def test_nan_predictions_are_one_tie_group_ranked_last():
    user = np.zeros(3, dtype=int)
    true = np.array([5.0, 1.0, 1.0])
    pred = np.array([np.nan, 0.0, np.nan])  # ranked: the 1 at 0.0, then {5, 1} tied
    assert ndcg_at_k(user, true, pred, 2) == pytest.approx(
        (1 + (32 / 2) / LOG3) / (31 + 1 / LOG3))
    assert hit_rate_at_k(user, true, pred, 2) == pytest.approx(1 / 2)
    assert precision_at_k(user, true, pred, 1) == 0.0


# --- set metrics -----------------------------------------------------------------------------

SET_USER = np.array([1, 1, 1, 1, 2, 2])
SET_TRUE = np.array([5.0, 4.0, 2.0, 1.0, 3.0, 2.0])
SET_PRED = np.array([0.1, 0.9, 0.8, 0.2, 1.0, 2.0])
# user 1 ranks items 1 (4), 2 (2), 3 (1), 0 (5); relevant = {0, 1}
# user 2 has no relevant item: counts for precision (0), skipped for recall, F1, hit


def test_set_metrics_at_1():
    args = (SET_USER, SET_TRUE, SET_PRED, 1)
    assert precision_at_k(*args) == pytest.approx((1.0 + 0.0) / 2)
    assert recall_at_k(*args) == pytest.approx(0.5)
    assert f1_at_k(*args) == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert hit_rate_at_k(*args) == pytest.approx(1.0)


def test_set_metrics_at_2():
    args = (SET_USER, SET_TRUE, SET_PRED, 2)
    assert precision_at_k(*args) == pytest.approx((0.5 + 0.0) / 2)
    assert recall_at_k(*args) == pytest.approx(0.5)
    assert f1_at_k(*args) == pytest.approx(0.5)
    assert hit_rate_at_k(*args) == pytest.approx(1.0)


def test_set_metrics_k_beyond_candidates_divides_by_list_length():
    args = (SET_USER, SET_TRUE, SET_PRED, 5)
    # user 1: 2 hits in a list of 4; user 2: 0 hits in a list of 2
    assert precision_at_k(*args) == pytest.approx((2 / 4 + 0.0) / 2)
    assert recall_at_k(*args) == pytest.approx(1.0)
    assert f1_at_k(*args) == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_threshold_is_configurable():
    args = (SET_USER, SET_TRUE, SET_PRED, 1)
    # threshold 3: user 2 now has item 4 (true 3) relevant but ranks item 5 first
    assert recall_at_k(*args, threshold=3.0) == pytest.approx((0.5 + 0.0) / 2)
    assert hit_rate_at_k(*args, threshold=3.0) == pytest.approx(0.5)
    assert precision_at_k(*args, threshold=5.0) == pytest.approx(0.0)


def test_hit_rate_misses():
    user = np.array([0, 0, 0])
    true = np.array([5.0, 1.0, 1.0])
    pred = np.array([0.0, 1.0, 2.0])
    assert hit_rate_at_k(user, true, pred, 2) == pytest.approx(0.0)
    assert hit_rate_at_k(user, true, pred, 3) == pytest.approx(1.0)


def test_set_metrics_over_all_candidates():
    user = np.zeros(4, dtype=int)
    true = np.array([np.nan, 5.0, np.nan, 3.0])
    pred = np.array([0.9, 0.8, 0.7, 0.1])
    assert precision_at_k(user, true, pred, 2) == pytest.approx(0.5)
    assert recall_at_k(user, true, pred, 2) == pytest.approx(1.0)
    assert math.isnan(recall_at_k(user, np.full(4, np.nan), pred, 2))


# --- compute_metrics -------------------------------------------------------------------------

def test_compute_metrics_names_and_values():
    frame = pd.DataFrame({"user": SET_USER, "item": np.arange(6), "true": SET_TRUE,
                          "pred": SET_PRED})
    out = compute_metrics(frame, ks=(1, 3))
    names = ["mae", "rmse", "accuracy"]
    for k in (1, 3):
        names += [f"ndcg@{k}", f"ndcg_lin@{k}", f"precision@{k}", f"recall@{k}", f"f1@{k}",
                  f"hit@{k}"]
    assert list(out) == names
    assert out["mae"] == pytest.approx(mae(SET_TRUE, SET_PRED))
    assert out["ndcg@3"] == pytest.approx(ndcg_at_k(SET_USER, SET_TRUE, SET_PRED, 3))
    assert out["ndcg_lin@3"] == pytest.approx(
        ndcg_at_k(SET_USER, SET_TRUE, SET_PRED, 3, gain="linear"))
    assert out["precision@1"] == pytest.approx(0.5)
    assert out["f1@1"] == pytest.approx(2 / 3)
    assert all(isinstance(v, float) for v in out.values())


def test_compute_metrics_rounded_mae_only_with_levels():
    frame = pd.DataFrame({"user": SET_USER, "item": np.arange(6), "true": SET_TRUE,
                          "pred": SET_PRED})
    stars = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    out = compute_metrics(frame, ks=(1,), levels=stars)
    assert list(out)[:4] == ["mae", "rmse", "mae_rounded", "accuracy"]
    assert out["mae_rounded"] == pytest.approx(
        mae(SET_TRUE, round_to_levels(SET_PRED, stars)))
    # The ranking metrics use the scores as they are, rounded or not.
    assert out["ndcg@1"] == compute_metrics(frame, ks=(1,))["ndcg@1"]
    assert "mae_rounded" not in compute_metrics(frame, ks=(1,))


def test_compute_metrics_default_ks():
    frame = pd.DataFrame({"user": [0], "item": [0], "true": [4.0], "pred": [4.0]})
    out = compute_metrics(frame)
    assert {"ndcg@1", "ndcg@3", "precision@5", "recall@5", "f1@5", "hit@5", "hit@10"} <= set(out)
    assert out["ndcg@10"] == 1.0 and out["mae"] == 0.0


def test_compute_metrics_missing_column():
    with pytest.raises(ValueError, match="pred"):
        compute_metrics(pd.DataFrame({"user": [0], "true": [1.0]}))


# --- invariants ------------------------------------------------------------------------------

METRICS = ("ndcg", "lin", "p", "r", "f1", "hit")


def _user_metrics(ranked_true, k, threshold=4.0):
    """Every ranking metric of one user whose candidates' true ratings are ``ranked_true``,
    best predicted first; a metric that skips the user is left out."""
    out = {}
    ideal = sorted(ranked_true, key=lambda r: -(r if not math.isnan(r) else -1e9))
    for name, gain in (("ndcg", lambda r: 2**r - 1), ("lin", lambda r: r)):
        def dcg(order, gain=gain):
            return sum((0.0 if math.isnan(r) else gain(r)) / math.log2(i + 2)
                       for i, r in enumerate(order[:k]))
        if dcg(ideal) > 0:
            out[name] = dcg(ranked_true) / dcg(ideal)
    num_relevant = sum(r >= threshold for r in ranked_true)
    hits = sum(r >= threshold for r in ranked_true[:k])
    precision = hits / min(k, len(ranked_true))
    out["p"] = precision
    if num_relevant:
        recall = hits / num_relevant
        out["r"] = recall
        out["f1"] = 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
        out["hit"] = float(hits > 0)
    return out


def _average(per_user):
    """Mean over users of each metric, over the users it does not skip."""
    values = {m: [u[m] for u in per_user if m in u] for m in METRICS}
    return {m: (float(np.mean(v)) if v else float("nan")) for m, v in values.items()}


def _reference_in_order(user, true, pred, k):
    """Slow, looped: each user's candidates ranked by pred, ties in row order."""
    per_user = []
    for u in dict.fromkeys(user.tolist()):
        rows = [j for j in range(len(user)) if user[j] == u]
        ranked = sorted(rows, key=lambda j: (math.isnan(pred[j]), -pred[j], j))
        per_user.append(_user_metrics([true[j] for j in ranked], k))
    return _average(per_user)


def _reference_over_tie_orders(user, true, pred, k):
    """Slow, by brute force: each user's metrics averaged over every order of every tie
    group (NaN predictions one group, last), then averaged over users."""
    per_user = []
    for u in dict.fromkeys(user.tolist()):
        rows = [j for j in range(len(user)) if user[j] == u]
        scores = sorted({-1e300 if math.isnan(pred[j]) else pred[j] for j in rows},
                        reverse=True)
        groups = [[j for j in rows if (-1e300 if math.isnan(pred[j]) else pred[j]) == s]
                  for s in scores]
        orders = [[j for group in choice for j in group] for choice in
                  itertools.product(*(itertools.permutations(g) for g in groups))]
        each = [_user_metrics([true[j] for j in order], k) for order in orders]
        per_user.append({m: float(np.mean([e[m] for e in each])) for m in each[0]})
    return _average(per_user)


def _all_metrics(user, true, pred, k):
    return {
        "ndcg": ndcg_at_k(user, true, pred, k),
        "lin": ndcg_at_k(user, true, pred, k, gain="linear"),
        "p": precision_at_k(user, true, pred, k),
        "r": recall_at_k(user, true, pred, k),
        "f1": f1_at_k(user, true, pred, k),
        "hit": hit_rate_at_k(user, true, pred, k),
    }


def test_brute_force_reference_by_hand():
    """The brute-force reference itself, on the all-tied example worked out above."""
    user, true, pred = np.zeros(3, dtype=int), np.array([5.0, 1.0, 1.0]), np.ones(3)
    expected = _reference_over_tie_orders(user, true, pred, 2)
    assert expected["hit"] == pytest.approx(2 / 3)
    assert expected["f1"] == pytest.approx(4 / 9)
    assert _reference_in_order(user, true, pred, 1)["ndcg"] == 1.0  # the old tie-break


ratings = st.one_of(st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]), st.just(float("nan")))


@st.composite
def ranking_cases(draw):
    n = draw(st.integers(1, 30))
    user = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    true = np.array(draw(st.lists(ratings, min_size=n, max_size=n)))
    # few distinct predictions, so that ties are common
    pred = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, 4.0]), min_size=n,
                                  max_size=n)))
    k = draw(st.integers(1, 6))
    return user, true, pred, k


@st.composite
def untied_cases(draw):
    """As :func:`ranking_cases`, but no two predictions are equal (at most one NaN)."""
    user, true, _, k = draw(ranking_cases())
    pred = np.array(draw(st.permutations(range(len(user)))), dtype=np.float64)
    if draw(st.booleans()):
        pred[draw(st.integers(0, len(user) - 1))] = np.nan
    return user, true, pred, k


@st.composite
def small_tied_cases(draw):
    """Up to 3 users of at most 6 candidates (at most 720 orders each) with common ties and
    NaN predictions."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    user = np.repeat(np.arange(len(sizes)), sizes)
    user = user[np.array(draw(st.permutations(range(len(user)))), dtype=int)]
    n = len(user)
    true = np.array(draw(st.lists(ratings, min_size=n, max_size=n)))
    pred = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, float("nan")]),
                                  min_size=n, max_size=n)))
    k = draw(st.integers(1, 7))
    return user, true, pred, k


@settings(max_examples=150, deadline=None)
@given(untied_cases())
def test_without_ties_vectorised_equals_looped_reference(case):
    user, true, pred, k = case
    expected = _reference_in_order(user, true, pred, k)
    for name, value in _all_metrics(user, true, pred, k).items():
        assert value == pytest.approx(expected[name], nan_ok=True), name


@settings(max_examples=150, deadline=None)
@given(small_tied_cases())
def test_with_ties_equals_the_mean_over_all_tie_orders(case):
    user, true, pred, k = case
    expected = _reference_over_tie_orders(user, true, pred, k)
    for name, value in _all_metrics(user, true, pred, k).items():
        assert value == pytest.approx(expected[name], nan_ok=True), name


@settings(max_examples=100, deadline=None)
@given(ranking_cases(), st.randoms(use_true_random=False))
def test_row_order_changes_no_metric(case, random):
    user, true, pred, k = case
    frame = pd.DataFrame({"user": user, "item": np.arange(len(user)), "true": true,
                          "pred": pred})
    shuffled = frame.iloc[random.sample(range(len(frame)), len(frame))]
    expected = compute_metrics(frame, ks=(k, k + 3))
    got = compute_metrics(shuffled, ks=(k, k + 3))
    for name, value in got.items():
        assert value == pytest.approx(expected[name], nan_ok=True), name


def test_row_order_changes_no_metric_at_scale():
    """A seeded frame of 40 users over 60 items with scores on a coarse grid: many ties,
    long tie groups straddling k."""
    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(40), 60)
    true = np.where(rng.random(len(user)) < 0.7, np.nan, rng.integers(1, 6, len(user)))
    pred = np.round(rng.random(len(user)), 1)
    frame = pd.DataFrame({"user": user, "item": np.tile(np.arange(60), 40), "true": true,
                          "pred": pred})
    expected = compute_metrics(frame, ks=(1, 5, 10, 30))
    for seed in range(5):
        shuffled = frame.sample(frac=1.0, random_state=seed)
        got = compute_metrics(shuffled, ks=(1, 5, 10, 30))
        assert got == pytest.approx(expected), seed


@settings(max_examples=100, deadline=None)
@given(ranking_cases())
def test_ndcg_between_zero_and_one_and_perfect_is_one(case):
    user, true, pred, k = case
    value = ndcg_at_k(user, true, pred, k)
    assert math.isnan(value) or -1e-12 <= value <= 1 + 1e-12
    perfect = np.where(np.isnan(true), -1.0, true)
    for gain in ("exp", "linear"):
        value = ndcg_at_k(user, true, perfect, k, gain=gain)
        assert math.isnan(value) or value == pytest.approx(1.0)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50))
def test_identical_arrays_have_zero_error(values):
    values = np.array(values)
    assert mae(values, values) == 0.0
    assert rmse(values, values) == 0.0
    assert accuracy(values, values) == 1.0
