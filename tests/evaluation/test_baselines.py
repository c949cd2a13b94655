"""Baselines: exact values on a 3 x 3 training set computed by hand with the damping formula."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.dataset import Interactions
from metarec.errors import DataError
from metarec.evaluation.baselines import Biases, GlobalMean, Popularity
from metarec.tasks.taskset import TaskSet


def rows(triples) -> Interactions:
    array = np.array(triples, dtype=np.float64).reshape(-1, 3)
    return Interactions(user=array[:, 0].astype(np.int64), item=array[:, 1].astype(np.int64),
                        rating=array[:, 2].astype(np.float32),
                        timestamp=np.full(len(array), np.nan))


# mu = 18 / 6 = 3
TRAIN = rows([(0, 0, 5), (0, 1, 3), (1, 0, 4), (1, 2, 2), (2, 1, 1), (2, 2, 3)])
NUM_USERS, NUM_ITEMS = 4, 4  # user 3 and item 3 have no training rating

# One pass with reg_item = 2, reg_user = 1 (items first, b_u = 0):
#   b_i0 = ((5-3) + (4-3)) / (2+2) = 0.75
#   b_i1 = ((3-3) + (1-3)) / (2+2) = -0.5
#   b_i2 = ((2-3) + (3-3)) / (2+2) = -0.25
#   b_u0 = ((5-3-0.75) + (3-3+0.5)) / (2+1) = 1.75/3 = 7/12
#   b_u1 = ((4-3-0.75) + (2-3+0.25)) / (2+1) = -0.5/3 = -1/6
#   b_u2 = ((1-3+0.5) + (3-3+0.25)) / (2+1) = -1.25/3 = -5/12
ITEM_BIAS = [0.75, -0.5, -0.25, 0.0]
USER_BIAS = [7 / 12, -1 / 6, -5 / 12, 0.0]


def one_pass() -> Biases:
    return Biases(reg_user=1.0, reg_item=2.0, passes=1).fit(TRAIN, NUM_USERS, NUM_ITEMS)


# --- GlobalMean ------------------------------------------------------------------------------

def test_global_mean():
    model = GlobalMean().fit(TRAIN, NUM_USERS, NUM_ITEMS)
    assert model.global_mean_ == pytest.approx(3.0)
    tasks = TaskSet.from_rows(rows([(3, 0, 5)]), rows([(3, 1, 2), (3, 3, 4)]))
    np.testing.assert_allclose(model.predict_tasks(tasks), [3.0, 3.0])
    np.testing.assert_allclose(model.score_items(rows([]), np.array([0, 9])), [3.0, 3.0])


# --- Biases ----------------------------------------------------------------------------------

def test_biases_one_pass_by_hand():
    model = one_pass()
    assert model.global_mean_ == pytest.approx(3.0)
    np.testing.assert_allclose(model.item_bias_, ITEM_BIAS)
    np.testing.assert_allclose(model.user_bias_, USER_BIAS)
    assert (model.reg_user, model.reg_item, model.passes) == (1.0, 2.0, 1)


def test_biases_two_passes_by_hand():
    model = Biases(reg_user=1.0, reg_item=2.0, passes=2).fit(TRAIN, NUM_USERS, NUM_ITEMS)
    # second item pass uses the first pass's user biases:
    #   b_i0 = ((5-3-7/12) + (4-3+1/6)) / 4 = (17/12 + 14/12) / 4 = 31/48
    assert model.item_bias_[0] == pytest.approx(31 / 48)
    #   b_i1 = ((3-3-7/12) + (1-3+5/12)) / 4 = (-7/12 - 19/12) / 4 = -26/48
    assert model.item_bias_[1] == pytest.approx(-26 / 48)


def test_biases_converge_to_a_fixed_point():
    model = Biases(reg_user=1.0, reg_item=2.0, passes=200).fit(TRAIN, NUM_USERS, NUM_ITEMS)
    mu, bu, bi = model.global_mean_, model.user_bias_, model.item_bias_
    rating = TRAIN.rating.astype(np.float64)
    for i in range(3):
        mask = TRAIN.item == i
        expected = (rating[mask] - mu - bu[TRAIN.user[mask]]).sum() / (mask.sum() + 2.0)
        assert bi[i] == pytest.approx(expected, abs=1e-9)
    for u in range(3):
        mask = TRAIN.user == u
        expected = (rating[mask] - mu - bi[TRAIN.item[mask]]).sum() / (mask.sum() + 1.0)
        assert bu[u] == pytest.approx(expected, abs=1e-12)


def test_biases_fit_is_deterministic():
    first = Biases().fit(TRAIN, NUM_USERS, NUM_ITEMS)
    second = Biases().fit(TRAIN, NUM_USERS, NUM_ITEMS)
    assert np.array_equal(first.user_bias_, second.user_bias_)
    assert np.array_equal(first.item_bias_, second.item_bias_)


def test_biases_new_user_from_support_and_unseen_item():
    model = one_pass()
    # new user 3, support: item 0 rated 5, unseen item 3 rated 4
    #   b_u = ((5-3-0.75) + (4-3-0)) / (2+1) = 2.25/3 = 0.75
    tasks = TaskSet.from_rows(rows([(3, 0, 5), (3, 3, 4)]), rows([(3, 1, 2), (3, 3, 4)]))
    np.testing.assert_allclose(model.predict_tasks(tasks), [3 + 0.75 - 0.5, 3 + 0.75 + 0.0])


def test_biases_user_bias_comes_from_support_not_training():
    model = one_pass()
    # user 0 is known from training, but only the support counts at test time:
    #   b_u = (3-3+0.5) / (1+1) = 0.25
    tasks = TaskSet.from_rows(rows([(0, 1, 3)]), rows([(0, 2, 1)]))
    np.testing.assert_allclose(model.predict_tasks(tasks), [3 + 0.25 - 0.25])


def test_biases_zero_shot_and_item_outside_the_fitted_range():
    model = one_pass()
    tasks = TaskSet.from_rows(rows([(3, 0, 5)]), rows([(3, 0, 2), (3, 2, 4)])).cap_support(0, 0)
    assert len(tasks.support) == 0
    np.testing.assert_allclose(model.predict_tasks(tasks), [3.75, 2.75])
    np.testing.assert_allclose(model.score_items(rows([]), np.array([0, 3, 99])),
                               [3.75, 3.0, 3.0])


def test_biases_predict_tasks_equals_score_items_per_task():
    model = Biases(reg_user=3.0, reg_item=1.0, passes=5).fit(TRAIN, NUM_USERS, NUM_ITEMS)
    support = rows([(0, 0, 4), (3, 1, 5), (3, 2, 5), (1, 3, 1), (2, 0, 2)])
    query = rows([(3, 0, 1), (0, 2, 3), (1, 1, 2), (3, 3, 5), (0, 3, 4), (2, 2, 2)])
    tasks = TaskSet.from_rows(support, query)
    predicted = model.predict_tasks(tasks)
    assert predicted.shape == (len(tasks.query),)
    for t in range(len(tasks)):
        user_support = tasks.support.subset(
            np.arange(tasks.support_offsets[t], tasks.support_offsets[t + 1]))
        query_rows = np.arange(tasks.query_offsets[t], tasks.query_offsets[t + 1])
        np.testing.assert_allclose(predicted[query_rows],
                                   model.score_items(user_support, tasks.query.item[query_rows]))


def test_biases_zero_damping_is_plain_means():
    model = Biases(reg_user=0.0, reg_item=0.0, passes=1).fit(TRAIN, NUM_USERS, NUM_ITEMS)
    # item 3 and user 3 have no rating: bias 0, not 0/0
    np.testing.assert_allclose(model.item_bias_, [1.5, -1.0, -0.5, 0.0])
    assert model.user_bias_[3] == 0.0


# --- Popularity ------------------------------------------------------------------------------

POPULAR = rows([(0, 0, 4), (1, 0, 2), (2, 0, 3), (0, 1, 5)])  # mu = 14/4 = 3.5


def test_popularity_shrunk_item_means_and_counts():
    model = Popularity(reg_item=1.0).fit(POPULAR, 3, 3)
    # item 0: 3.5 + ((4-3.5) + (2-3.5) + (3-3.5)) / (3+1) = 3.5 - 0.375
    # item 1: 3.5 + (5-3.5) / (1+1) = 4.25; item 2 unseen: 3.5
    np.testing.assert_allclose(model.item_mean_, [3.125, 4.25, 3.5])
    np.testing.assert_array_equal(model.item_count_, [3, 1, 0])
    tasks = TaskSet.from_rows(rows([(1, 1, 1)]), rows([(1, 2, 3), (1, 1, 3), (1, 0, 3)]))
    np.testing.assert_allclose(model.predict_tasks(tasks), [3.5, 4.25, 3.125])
    np.testing.assert_allclose(model.score_items(rows([]), np.array([2, 1, 0, 7])),
                               [0.0, 1.0, 3.0, 0.0])


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [GlobalMean, Biases, Popularity])
def test_unfitted_raises(cls):
    with pytest.raises(RuntimeError, match="not fitted"):
        cls().score_items(rows([]), np.array([0]))


@pytest.mark.parametrize("cls", [GlobalMean, Biases, Popularity])
def test_fit_checks_training_data(cls):
    with pytest.raises(DataError, match="empty"):
        cls().fit(rows([]), 3, 3)
    with pytest.raises(DataError, match="item indices"):
        cls().fit(TRAIN, 3, 2)
    with pytest.raises(DataError, match="user indices"):
        cls().fit(TRAIN, 2, 3)
