"""Baselines: exact values on hand-made training sets (the damping formula, a ridge solve
by hand), and matrix factorisation recovering a low-rank matrix."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.dataset import Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import DataError
from metarec.evaluation.baselines import (
    BiasedMFALS,
    Biases,
    GlobalMean,
    Popularity,
    _grouped_ridge,
    tuned_mf,
)
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
    np.testing.assert_allclose(model.rank_tasks(tasks), [0.0, 1.0, 3.0])


def test_the_tables_rank_popularity_by_count_and_score_its_ratings_by_mean():
    """A new user's query: the most rated item (3 ratings, mean 3.125) first, though the
    item rated once has the higher mean (4.25); MAE still reads the shrunk means."""
    from metarec.evaluation.metrics import compute_metrics
    from metarec.evaluation.protocol import predictions_frame
    from metarec.experiment import Ranked

    model = Popularity(reg_item=1.0).fit(POPULAR, 3, 3)
    tasks = TaskSet.from_rows(rows([(2, 2, 4)]), rows([(2, 1, 1), (2, 0, 5)]))
    ranked = Ranked(model.predict_tasks, model.rank_tasks)
    frame = predictions_frame(tasks, ranked(tasks), ranked.score(tasks))
    out = compute_metrics(frame, ks=(1,))
    assert out["ndcg@1"] == 1.0 and out["hit@1"] == 1.0
    assert out["mae"] == pytest.approx(((4.25 - 1) + (5 - 3.125)) / 2)
    by_mean = compute_metrics(predictions_frame(tasks, ranked(tasks)), ks=(1,))
    assert by_mean["hit@1"] == 0.0


# --- BiasedMFALS ----------------------------------------------------------------------------

def test_grouped_ridge_by_hand():
    # Group 0: rows (1, 1), (1, 2) with targets 1, 3 and precisions 1:
    #   [[1+1+1, 1+2], [1+2, 1+4+1]] w = [1+3, 1+6] -> w = (1/3, 1).
    # Group 1 has no rows: 0. Group 2: row (1, 0), target 2: [[2, 0], [0, 1]] w = [2, 0].
    design = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 2.0]])
    out = _grouped_ridge(np.array([0, 2, 0]), design, np.array([1.0, 2.0, 3.0]), 3,
                         np.array([1.0, 1.0]))
    np.testing.assert_allclose(out, [[1 / 3, 1.0], [0.0, 0.0], [1.0, 0.0]], atol=1e-12)


def test_mf_with_pinned_factors_is_the_damped_bias_model():
    """Factors held at zero by a huge precision leave the bias model, whose alternating
    ridge solves converge to the same minimum as :class:`Biases`' shrunk means."""
    mf = BiasedMFALS(factors=2, reg=1e12, reg_bias=2.0, sweeps=300).fit(TRAIN, NUM_USERS,
                                                                       NUM_ITEMS)
    biases = Biases(reg_user=2.0, reg_item=2.0, passes=300).fit(TRAIN, NUM_USERS, NUM_ITEMS)
    np.testing.assert_allclose(mf.user_[:, 0], biases.user_bias_, atol=1e-9)
    np.testing.assert_allclose(mf.item_[:, 0], biases.item_bias_, atol=1e-9)
    assert np.abs(mf.user_[:, 1:]).max() < 1e-9


def _low_rank(num_users: int, num_items: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 3.0 + rng.normal(0, 0.7, (num_users, 2)) @ rng.normal(0, 0.7, (2, num_items))


def test_mf_recovers_a_low_rank_matrix_and_folds_in_a_new_user():
    """Every rating of 30 users on 20 items from an exact rank-2 model: ALS fits it, and a
    new user (not in training) folded in from 15 ratings is predicted on the other 5."""
    truth = _low_rank(31, 20)
    users, items = np.meshgrid(np.arange(30), np.arange(20), indexing="ij")
    train = Interactions(user=users.ravel(), item=items.ravel(),
                         rating=truth[:30].ravel().astype(np.float32),
                         timestamp=np.full(600, np.nan))
    mf = BiasedMFALS(factors=2, reg=1e-6, reg_bias=1e-6, sweeps=100).fit(train, 31, 20)
    support = rows([(30, i, truth[30, i]) for i in range(15)])
    query = rows([(30, i, truth[30, i]) for i in range(15, 20)])
    predicted = mf.predict_tasks(TaskSet.from_rows(support, query))
    np.testing.assert_allclose(predicted, truth[30, 15:], atol=2e-3)
    # The model that knows nothing of the user's taste is far off.
    assert np.abs(mf.global_mean_ - truth[30, 15:]).max() > 0.1


def test_mf_fold_in_is_the_penalised_minimum_and_matches_score_items():
    mf = BiasedMFALS(factors=3, reg=0.5, reg_bias=1.5, sweeps=5, seed=1).fit(
        TRAIN, NUM_USERS, NUM_ITEMS)
    support = rows([(3, 0, 5), (3, 1, 2), (3, 3, 4), (0, 2, 1)])
    query = rows([(3, 2, 4), (3, 3, 1), (0, 0, 3)])
    tasks = TaskSet.from_rows(support, query)
    predicted = mf.predict_tasks(tasks)
    for t in range(len(tasks)):
        own = tasks.support.subset(np.arange(tasks.support_offsets[t],
                                             tasks.support_offsets[t + 1]))
        user = mf._fold_in(own, np.zeros(len(own), np.int64), 1)[0]
        # Gradient of the penalised squared error at the folded-in user is zero; item 3
        # (unseen in training) adds only to the bias.
        item = np.array([mf.item_[i] if i < 3 else np.zeros(4) for i in own.item])
        residual = own.rating - (mf.global_mean_ + user[0] + item[:, 0] + item[:, 1:] @ user[1:])
        design = np.concatenate([np.ones((len(own), 1)), item[:, 1:]], axis=1)
        gradient = -design.T @ residual + np.array([1.5, 0.5, 0.5, 0.5]) * user
        np.testing.assert_allclose(gradient, 0, atol=1e-9)
        rows_t = np.arange(tasks.query_offsets[t], tasks.query_offsets[t + 1])
        np.testing.assert_allclose(predicted[rows_t],
                                   mf.score_items(own, tasks.query.item[rows_t]))
    # No support: mu + b_i.
    np.testing.assert_allclose(mf.score_items(rows([]), np.array([1, 7])),
                               [mf.global_mean_ + mf.item_[1, 0], mf.global_mean_])


def test_mf_beats_biases_on_generated_data_and_is_tuned_on_validation():
    ds = generate(SyntheticConfig(num_users=300, num_items=150, num_ratings=15000))
    split = split_dataset(ds, SplitConfig(seed=0))
    train = split.train_ratings
    regs = (0.01, 3.0, 1e6)
    errors = {}
    for reg in regs:
        fitted = BiasedMFALS(factors=8, reg=reg).fit(train, ds.num_users, ds.num_items)
        residual = fitted.predict_tasks(split.validation) - split.validation.query.rating
        errors[reg] = float(np.mean(residual ** 2))
    tuned = tuned_mf(train, ds.num_users, ds.num_items, split.validation, "mse", regs,
                     factors=8)
    assert tuned.reg == min(errors, key=errors.get)
    assert tuned.reg == 3.0  # neither the unregularised nor the pinned end
    again = tuned_mf(train, ds.num_users, ds.num_items, split.validation, "mse", regs,
                     factors=8)
    np.testing.assert_array_equal(again.item_, tuned.item_)
    new_users = split.scenarios["new_users"]
    biases = Biases().fit(train, ds.num_users, ds.num_items)

    def mae(model) -> float:
        return float(np.mean(np.abs(model.predict_tasks(new_users) - new_users.query.rating)))

    assert mae(tuned) < mae(biases) - 0.03


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [GlobalMean, Biases, Popularity, BiasedMFALS])
def test_unfitted_raises(cls):
    with pytest.raises(RuntimeError, match="not fitted"):
        cls().score_items(rows([]), np.array([0]))


@pytest.mark.parametrize("cls", [GlobalMean, Biases, Popularity, BiasedMFALS])
def test_fit_checks_training_data(cls):
    with pytest.raises(DataError, match="empty"):
        cls().fit(rows([]), 3, 3)
    with pytest.raises(DataError, match="item indices"):
        cls().fit(TRAIN, 3, 2)
    with pytest.raises(DataError, match="user indices"):
        cls().fit(TRAIN, 2, 3)
