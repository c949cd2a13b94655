"""``ridge``'s neighbourhood term (``neighbours``): exact on hand-made inputs, equal to its
definition on a trained model, absent for films training never saw, unseen by training,
chosen on validation, the same online (the service's path), saved, taken by the
``foldin`` control."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from metarec.data.dataset import Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.evaluation.item_knn import ItemKNN
from metarec.learners import LearnerConfig, Pretrain, Ridge
from metarec.learners.neighbours import (
    NEIGHBOUR_DAMPINGS,
    NEIGHBOUR_SCALES,
    NeighbourTables,
    choose_scale_and_damping,
    neighbour_offset,
    neighbour_weights,
)
from metarec.learners.online import OnlineConfig, OnlineRecommender
from metarec.learners.ridge import fold_in
from metarec.models import FeatureMF
from metarec.tasks.taskset import TaskSet


def test_weights_keep_the_most_similar_positive_support_items() -> None:
    similarity = torch.tensor([[0.0, 0.5, -0.2, 0.1],
                               [0.5, 0.0, 0.3, 0.9],
                               [-0.2, 0.3, 0.0, 0.4],
                               [0.1, 0.9, 0.4, 0.0]])
    support = torch.tensor([[1, 2, 3, 0]])
    mask = torch.tensor([[True, True, True, False]])  # the last row is padding
    query = torch.tensor([[0, 2, 7]])  # item 7 is outside the table
    got = neighbour_weights(similarity, query, support, mask, neighbours=2)
    want = torch.tensor([[[0.5, 0.0, 0.1, 0.0],    # item 0: 0.5 and 0.1 (not -0.2)
                          [0.3, 0.0, 0.4, 0.0],    # item 2: 0.4, 0.3 (itself 0)
                          [0.0, 0.0, 0.0, 0.0]]])  # unknown item: none
    torch.testing.assert_close(got, want)
    # With one neighbour only the most similar is kept.
    one = neighbour_weights(similarity, query, support, mask, neighbours=1)
    torch.testing.assert_close(one[0, :2], torch.tensor([[0.5, 0.0, 0.0, 0.0],
                                                         [0.0, 0.0, 0.4, 0.0]]))


def test_offset_is_the_damped_weighted_mean_of_residuals() -> None:
    weights = torch.tensor([[0.5, 0.0, 0.1], [0.0, 0.0, 0.0]])
    residual = torch.tensor([1.0, 5.0, -2.0])
    got = neighbour_offset(weights, residual, 2.0, 0.4)
    # 2 * (0.5 * 1 + 0.1 * -2) / (0.6 + 0.4) = 0.6; no neighbour: 0.
    torch.testing.assert_close(got, torch.tensor([0.6, 0.0]))


def test_the_grid_choice_on_hand_made_errors() -> None:
    ratings = np.array([4.0, 2.0, 5.0])
    base = np.array([3.5, 2.5, 4.6])
    # At damping 0.5 the term is exactly the residual: scale 1 fits every rating (the
    # third after clipping 5.4 to 5); at the other dampings it points the wrong way.
    terms = {c: -(ratings - base) for c in NEIGHBOUR_DAMPINGS}
    terms[0.5] = np.array([0.5, -0.5, 0.8])
    assert choose_scale_and_damping(base, terms, ratings, (1.0, 5.0), "mae") == (1.0, 0.5)
    assert choose_scale_and_damping(base, terms, ratings, (1.0, 5.0), "mse") == (1.0, 0.5)
    # A term that only hurts is switched off (scale 0), and nothing is clipped then.
    hurt = {c: -(ratings - base) for c in NEIGHBOUR_DAMPINGS}
    assert choose_scale_and_damping(base, hurt, ratings, (1.0, 5.0), "mae")[0] == 0.0


@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig(num_users=60, num_items=50, num_ratings=2000))
    return ds, split_dataset(ds, SplitConfig(seed=0))


def _tables(ds, split) -> NeighbourTables:
    return NeighbourTables.from_ratings(split.train_ratings, ds.num_users, ds.num_items,
                                        torch.device("cpu"), torch.float64)


def test_similarity_is_item_knns(data) -> None:
    ds, split = data
    knn = ItemKNN().fit(split.train_ratings, ds.num_users, ds.num_items)
    np.testing.assert_array_equal(_tables(ds, split).similarity.numpy(),
                                  knn.similarity_.astype(np.float64))


def _fit(ds, split, neighbours: int) -> Ridge:
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    learner = Ridge(model, LearnerConfig(epochs=3, patience=None, dtype="float64",
                                         neighbours=neighbours))
    return learner.fit(split.train, ds, split.validation)


@pytest.fixture(scope="module")
def trained(data):
    ds, split = data
    return _fit(ds, split, neighbours=3)


def _without_neighbours(learner: Ridge) -> Ridge:
    plain = Ridge(learner.model, replace(learner.config, neighbours=0))
    plain.log_precisions.load_state_dict(learner.log_precisions.state_dict())
    plain.features_, plain.known_ = learner.features_, learner.known_
    return plain


def test_training_does_not_see_the_term(data, trained) -> None:
    """The trained model and its epoch records are those of a plain ``ridge``."""
    ds, split = data
    plain = _fit(ds, split, neighbours=0)
    assert plain.history_ == trained.history_
    state = trained.state_dict()
    assert set(state) - set(plain.state_dict()) == {"neighbours.scale", "neighbours.damping"}
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)


def test_scale_and_damping_are_the_best_of_the_grid_on_validation(data, trained) -> None:
    _, split = data
    val = split.validation
    chosen = (trained.neighbour_scale, trained.neighbour_damping)
    assert chosen[0] > 0  # the term helps these validation users

    def loss(scale: float, damping: float) -> float:
        trained.neighbour_scale, trained.neighbour_damping = scale, damping
        return trained.validation_loss(val)

    try:
        losses = {(g, c): loss(g, c) for g in NEIGHBOUR_SCALES[1:] for c in NEIGHBOUR_DAMPINGS}
        with trained.term("off"):
            plain = trained.validation_loss(val)
    finally:
        trained.neighbour_scale, trained.neighbour_damping = chosen
    assert losses[chosen] == pytest.approx(min(losses.values()), abs=1e-12)
    assert losses[chosen] < plain


def test_predictions_add_the_term_to_the_plain_solve(data, trained) -> None:
    """Each prediction is the same model's plain ridge prediction plus the term computed
    by hand from its support residuals and the similarity table, clipped to 1-5."""
    ds, split = data
    plain = _without_neighbours(trained)
    tasks = split.scenarios["warm"]
    fitted = plain.predict_tasks(TaskSet(tasks.users, tasks.support, tasks.support_offsets,
                                         tasks.support, tasks.support_offsets))
    table = _tables(ds, split).similarity.numpy()
    scale, damping = trained.neighbour_scale, trained.neighbour_damping
    want = plain.predict_tasks(tasks)
    for t in range(len(tasks)):
        rows = slice(tasks.support_offsets[t], tasks.support_offsets[t + 1])
        items = tasks.support.item[rows]
        residual = tasks.support.rating[rows] - fitted[rows]
        for q in range(tasks.query_offsets[t], tasks.query_offsets[t + 1]):
            sims = table[tasks.query.item[q], items].astype(np.float64)
            keep = np.argsort(-sims, kind="stable")[:3]
            keep = keep[sims[keep] > 0]
            want[q] += scale * (sims[keep] @ residual[keep]) / (sims[keep].sum() + damping)
    want = np.clip(want, 1, 5)
    got = trained.predict_tasks(tasks)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert np.abs(got - plain.predict_tasks(tasks)).max() > 1e-3
    # One task at a time (serving a user) gives the same predictions.
    single = np.concatenate([trained.predict_tasks(tasks.select(np.array([t])))
                             for t in range(len(tasks))])
    np.testing.assert_allclose(single, got, atol=1e-10)


def test_films_training_never_saw_get_no_term(data, trained) -> None:
    """New films are scored as without the term, clipped to the rating range."""
    _, split = data
    tasks = split.scenarios["new_items"]
    np.testing.assert_array_equal(
        trained.predict_tasks(tasks),
        np.clip(_without_neighbours(trained).predict_tasks(tasks), 1, 5))


def test_online_scoring_adds_the_term_as_batch_prediction_does(data, trained) -> None:
    """The online recommender (the service's path) scores a user as ``predict_tasks``
    does after adapting to the same support set, one user at a time and batched."""
    ds, split = data
    tasks = split.scenarios["warm"].select(np.array([0, 1]))
    online = OnlineRecommender(trained, ds, OnlineConfig(support_cap=1000))
    supports = []
    for t, user in enumerate(tasks.users.tolist()):
        rows = slice(tasks.support_offsets[t], tasks.support_offsets[t + 1])
        support = Interactions(np.full(rows.stop - rows.start, user),
                               tasks.support.item[rows], tasks.support.rating[rows],
                               np.arange(rows.stop - rows.start, dtype=np.float64))
        online.learn(support)
        supports.append(support)
    every = np.arange(ds.num_items)
    scores = []
    for user, support in zip(tasks.users.tolist(), supports, strict=True):
        want = trained.score_items(user, support, every)
        with trained.term("off"):
            assert np.abs(want - trained.score_items(user, support, every)).max() > 1e-3
        scores.append(online.score(user))
        np.testing.assert_allclose(scores[-1], want, atol=1e-5)  # as online adaptation
    users, items = np.repeat(tasks.users, 7), np.tile(np.arange(0, 49, 7), 2)
    np.testing.assert_allclose(online.predict(users, items),
                               np.concatenate([s[items[:7]] for s in scores]), atol=1e-8)


def test_saved_and_loaded(data, trained, tmp_path) -> None:
    ds, split = data
    folder = trained.save(tmp_path / "neighbours")
    assert (folder / "memory.safetensors").exists()  # the ratings the table is built from
    loaded = Ridge.load(folder, features=ds)
    assert (loaded.neighbour_scale, loaded.neighbour_damping) == (
        trained.neighbour_scale, trained.neighbour_damping)
    tasks = split.scenarios["new_users"]
    np.testing.assert_array_equal(loaded.predict_tasks(tasks), trained.predict_tasks(tasks))


def test_the_fold_in_control_takes_the_term(data) -> None:
    ds, split = data
    torch.manual_seed(0)
    trained = Pretrain(FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3),
                       LearnerConfig(epochs=2, dtype="float64")).fit(split.train, ds)
    plain = fold_in(trained, split.validation)
    control = fold_in(trained, split.validation, neighbours=3)
    assert control.config.prior_precision == plain.config.prior_precision
    assert control.config.neighbours == 3
    tasks = split.scenarios["warm"]
    with control.term("off"):
        np.testing.assert_array_equal(control.predict_tasks(tasks), plain.predict_tasks(tasks))
    if control.neighbour_scale > 0:
        assert np.abs(control.predict_tasks(tasks) - plain.predict_tasks(tasks)).max() > 1e-4


def test_settings_are_checked(data) -> None:
    ds, _ = data
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    with pytest.raises(ConfigError, match="neighbours is for ridge"):
        Pretrain(model, LearnerConfig(neighbours=5))
    with pytest.raises(ConfigError, match="neighbours must be >= 0"):
        LearnerConfig(neighbours=-1)
    with pytest.raises(ConfigError, match="item_id_dropout must be 0"):
        Ridge(FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3,
                                    item_id_embedding=True),
              LearnerConfig(neighbours=5, item_id_dropout=0.1))
