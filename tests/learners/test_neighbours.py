"""``ridge``'s neighbourhood term (``neighbours``): exact on hand-made inputs, equal to its
definition on a trained model, absent for films training never saw, learned, saved."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.evaluation.item_knn import ItemKNN
from metarec.learners import LearnerConfig, Pretrain, Ridge
from metarec.learners.neighbours import (
    SIMILARITY_SHRINK,
    NeighbourTables,
    neighbour_offset,
    neighbour_weights,
)
from metarec.models import FeatureMF
from metarec.models.item_similarity import residual_sums, shrunk_cosine
from metarec.tasks.batch import pad_tasks
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
    got = neighbour_offset(weights, residual, torch.tensor(2.0), torch.tensor(0.4))
    # 2 * (0.5 * 1 + 0.1 * -2) / (0.6 + 0.4) = 0.6; no neighbour: 0.
    torch.testing.assert_close(got, torch.tensor([0.6, 0.0]))


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


def test_training_tasks_leave_their_own_user_out(data) -> None:
    """A training task's similarities are those of the training ratings without its
    user's; its query ratings are in the tables, so otherwise they would inform their own
    predictions."""
    ds, split = data
    tables = _tables(ds, split)
    ratings = split.train_ratings
    biases = (tables.global_mean, tables.user_bias.numpy(), tables.item_bias.numpy())
    residual = (ratings.rating - biases[0] - biases[1][ratings.user]
                - biases[2][ratings.item])
    batch = pad_tasks(split.train, np.array([0, 3]), ds.users, ds.items).to(
        dtype=torch.float64)
    wide = int(batch.support_mask.shape[1])
    got = tables.training_weights(batch.users, batch.query_items, batch.query_ratings,
                                  batch.support_items, batch.support_ratings,
                                  batch.support_mask, neighbours=wide)
    plain = tables.weights(batch.query_items, batch.support_items, batch.support_mask, wide)
    for t, user in enumerate(batch.users.tolist()):
        others = ratings.user != user
        sums = residual_sums(ratings.user[others], ratings.item[others],
                             residual[others], ds.num_users, ds.num_items)
        without = shrunk_cosine(*(x.astype(np.float64) for x in sums), SIMILARITY_SHRINK)
        q = batch.query_items[t][batch.query_mask[t]].numpy()
        j = batch.support_items[t].numpy()
        want = np.clip(without[np.ix_(q, j)], 0, None) * batch.support_mask[t].numpy()
        np.testing.assert_allclose(got[t][batch.query_mask[t]].numpy(), want, atol=1e-5)
        assert np.abs(want - plain[t][batch.query_mask[t]].numpy()).max() > 1e-3


@pytest.fixture(scope="module")
def trained(data):
    ds, split = data
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    learner = Ridge(model, LearnerConfig(epochs=3, patience=None, dtype="float64",
                                         neighbours=3))
    return learner.fit(split.train, ds, split.validation)


def _without_neighbours(learner: Ridge) -> Ridge:
    plain = Ridge(learner.model, replace(learner.config, neighbours=0))
    plain.log_precisions.load_state_dict(learner.log_precisions.state_dict())
    plain.features_, plain.known_ = learner.features_, learner.known_
    return plain


def test_predictions_add_the_term_to_the_plain_solve(data, trained) -> None:
    """Each prediction is the same model's plain ridge prediction plus the term computed
    by hand from its support residuals and the similarity table."""
    ds, split = data
    plain = _without_neighbours(trained)
    tasks = split.scenarios["warm"]
    fitted = plain.predict_tasks(TaskSet(tasks.users, tasks.support, tasks.support_offsets,
                                         tasks.support, tasks.support_offsets))
    table = _tables(ds, split).similarity.numpy()
    params = trained.scalar_parameters()
    scale, damping = params["neighbour_scale"], params["neighbour_damping"]
    assert scale != pytest.approx(1.0) and damping != pytest.approx(1.0)  # learned
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
    got = trained.predict_tasks(tasks)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert np.abs(got - plain.predict_tasks(tasks)).max() > 1e-3
    # One task at a time (serving a user) gives the same predictions.
    single = np.concatenate([trained.predict_tasks(tasks.select(np.array([t])))
                             for t in range(len(tasks))])
    np.testing.assert_allclose(single, got, atol=1e-10)


def test_films_training_never_saw_get_no_term(data, trained) -> None:
    _, split = data
    tasks = split.scenarios["new_items"]
    np.testing.assert_array_equal(trained.predict_tasks(tasks),
                                  _without_neighbours(trained).predict_tasks(tasks))


def test_the_term_is_learned_and_recorded(trained) -> None:
    assert all("neighbour_scale" in record and "neighbour_damping" in record
               for record in trained.history_)
    assert len({record["neighbour_scale"] for record in trained.history_}) == 3


def test_saved_and_loaded(data, trained, tmp_path) -> None:
    ds, split = data
    folder = trained.save(tmp_path / "neighbours")
    assert (folder / "memory.safetensors").exists()  # the ratings the table is built from
    loaded = Ridge.load(folder, features=ds)
    tasks = split.scenarios["new_users"]
    np.testing.assert_array_equal(loaded.predict_tasks(tasks), trained.predict_tasks(tasks))
    assert loaded.scalar_parameters() == trained.scalar_parameters()


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
