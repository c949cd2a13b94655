"""Item-item kNN: exact on hand-made ratings, equal to a plain per-row loop of its formula
on generated data, and the same through both surfaces."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.dataset import Interactions
from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.evaluation.baselines import Biases
from metarec.evaluation.item_knn import ItemKNN
from metarec.tasks.taskset import TaskSet


def rows(triples) -> Interactions:
    array = np.array(triples, dtype=np.float64).reshape(-1, 3)
    return Interactions(user=array[:, 0].astype(np.int64), item=array[:, 1].astype(np.int64),
                        rating=array[:, 2].astype(np.float32),
                        timestamp=np.full(len(array), np.nan))


# Items 0 and 1 are rated alike by every user (identical residual columns: cosine 1);
# item 2 is rated against them; item 3 is never rated in training.
TRAIN = rows([(0, 0, 5), (0, 1, 5), (0, 2, 1), (1, 0, 2), (1, 1, 2), (1, 2, 4),
              (2, 0, 4), (2, 1, 4), (2, 2, 2)])


def test_similarity_is_the_shrunk_cosine_of_residuals() -> None:
    knn = ItemKNN(shrink=1.0).fit(TRAIN, 4, 4)
    sim = knn.similarity_
    # Identical columns, 3 co-raters: cosine 1 shrunk by 3 / (3 + 1).
    assert sim[0, 1] == pytest.approx(0.75)
    assert sim[1, 0] == pytest.approx(0.75)
    assert sim[0, 2] < 0 and sim[2, 3] == 0 and np.all(np.diag(sim) == 0)


def test_an_item_rated_like_a_support_item_is_predicted_at_its_rating() -> None:
    knn = ItemKNN(shrink=1.0).fit(TRAIN, 4, 4)
    biases = knn.biases_
    assert biases.item_bias_[0] == pytest.approx(biases.item_bias_[1])
    # A new user (3) who gave item 0 three stars: item 1's only positive neighbour is
    # item 0, so r_hat = mu + b_u + b_1 + (3 - mu - b_u - b_0) = 3 exactly. Item 2 has
    # no positive neighbour and item 3 no training rating: both are the bias prediction.
    tasks = TaskSet.from_rows(rows([(3, 0, 3)]), rows([(3, 1, 0), (3, 2, 0), (3, 3, 0)]))
    pred = knn.predict_tasks(tasks)
    by_bias = Biases(knn.reg_user, knn.reg_item, knn.passes).fit(TRAIN, 4, 4).predict_tasks(
        tasks)
    assert pred[0] == pytest.approx(3.0)
    np.testing.assert_allclose(pred[1:], by_bias[1:])
    np.testing.assert_allclose(knn.score_items(rows([(3, 0, 3)]), np.array([1, 2, 3])), pred)


def _looped(knn: ItemKNN, support: Interactions, items: np.ndarray) -> np.ndarray:
    """The module text's formula, one prediction at a time."""
    b = knn.biases_
    mu, n = b.global_mean_, len(b.item_bias_)
    item_bias = [b.item_bias_[i] if i < n else 0.0 for i in support.item]
    user_bias = sum(float(r) - mu - bi for r, bi in zip(support.rating, item_bias,
                                                       strict=True)) / (len(support)
                                                                        + knn.reg_user)
    residual = [float(r) - mu - user_bias - bi for r, bi in zip(support.rating, item_bias,
                                                               strict=True)]
    out = []
    for j in items:
        base = mu + user_bias + (b.item_bias_[j] if j < n else 0.0)
        pairs = sorted(((float(knn.similarity_[j, i]), e) for i, e in zip(
            support.item, residual, strict=True) if i < n and j < n
            and knn.similarity_[j, i] > 0), reverse=True)[:knn.neighbours]
        weight = sum(s for s, _ in pairs)
        out.append(base + (sum(s * e for s, e in pairs) / weight if weight > 0 else 0.0))
    return np.array(out)


@pytest.mark.parametrize("neighbours", [1, 3, 20])
def test_vectorised_equals_a_loop_over_rows(neighbours: int) -> None:
    ds = generate(SyntheticConfig(num_users=120, num_items=60, num_ratings=3000))
    split = split_dataset(ds, SplitConfig(seed=0))
    knn = ItemKNN(neighbours=neighbours, shrink=5.0, chunk=7).fit(
        split.train_ratings, ds.num_users, ds.num_items)
    whole = ItemKNN(neighbours=neighbours, shrink=5.0).fit(
        split.train_ratings, ds.num_users, ds.num_items)
    np.testing.assert_allclose(knn.similarity_, whole.similarity_, rtol=1e-5, atol=1e-7)
    for name in ("new_users", "new_items"):
        tasks = split.scenarios[name]
        pred = knn.predict_tasks(tasks)
        for t in range(len(tasks)):
            one = tasks.select(np.array([t]))
            rows_of_t = slice(tasks.query_offsets[t], tasks.query_offsets[t + 1])
            np.testing.assert_allclose(pred[rows_of_t],
                                       _looped(knn, one.support, one.query.item),
                                       rtol=1e-6, atol=1e-6)


def test_bad_settings_and_an_unfitted_model_are_refused() -> None:
    with pytest.raises(ValueError, match="neighbours must be at least 1"):
        ItemKNN(neighbours=0)
    with pytest.raises(RuntimeError, match="ItemKNN is not fitted"):
        ItemKNN().score_items(rows([]), np.array([0]))
    with pytest.raises(ValueError, match="item x item similarity table of"):
        ItemKNN().fit(TRAIN, 4, 100_000)
