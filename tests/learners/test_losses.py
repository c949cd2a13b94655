"""The training objective, ``LearnerConfig.loss``: squared error learns the mean rating,
absolute error the median, in plain training and meta-learning alike."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.learners import LearnerConfig, learner_class
from metarec.learners.inner_loop import masked_listnet, masked_loss
from metarec.models import FeatureMLP

pytestmark = pytest.mark.usefixtures("one_thread")


def test_masked_loss_on_hand_made_rows() -> None:
    pred = torch.tensor([1.0, 4.0, 0.0])
    target = torch.tensor([3.0, 3.0, 9.0])
    mask = torch.tensor([True, True, False])
    # Errors -2, 1 (the third row is masked out): MSE (4 + 1) / 2, MAE (2 + 1) / 2.
    assert masked_loss(pred, target, mask, "mse").item() == pytest.approx(2.5)
    assert masked_loss(pred, target, mask, "mae").item() == pytest.approx(1.5)
    none = torch.zeros(3, dtype=torch.bool)
    assert masked_loss(pred, target, none, "mae").item() == 0.0
    with pytest.raises(ValueError, match="loss must be one of"):
        masked_loss(pred, target, mask, "l1")


def test_listnet_on_hand_made_rows() -> None:
    """Ratings 1, 2 (a third row masked out) against equal predictions: p = (1, e) / (1 +
    e), q = (1/2, 1/2), KL = p_1 log(2 p_1) + p_2 log(2 p_2). Shifting the predictions
    changes nothing; predictions equal to the ratings up to a constant score 0."""
    pred = torch.tensor([0.0, 0.0, 9.0], dtype=torch.float64)
    target = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    mask = torch.tensor([True, True, False])
    p1, p2 = 1 / (1 + np.e), np.e / (1 + np.e)
    expected = p1 * np.log(2 * p1) + p2 * np.log(2 * p2)
    assert masked_listnet(pred, target, mask).item() == pytest.approx(expected, abs=1e-12)
    assert masked_listnet(pred + 7, target, mask).item() == pytest.approx(expected, abs=1e-12)
    assert masked_listnet(target - 3, target, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert masked_listnet(pred, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0
    # Reversing the order costs more than a tie.
    assert masked_listnet(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), target,
                          mask).item() > expected


def test_rank_weight_is_for_ridge() -> None:
    ds = generate(SyntheticConfig(num_users=30, num_items=20, num_ratings=500))
    with pytest.raises(ConfigError, match="rank_weight is for ridge"):
        learner_class("maml-r")(FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,)),
                                LearnerConfig(rank_weight=1.0))
    with pytest.raises(ConfigError, match="rank_weight must be >= 0"):
        LearnerConfig(rank_weight=-1.0)


def test_an_unknown_loss_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="loss must be one of"):
        LearnerConfig(loss="l2")


def test_reptile_refuses_a_query_loss_it_cannot_use() -> None:
    ds = generate(SyntheticConfig(num_users=20, num_items=20, num_ratings=300))
    model = FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,))
    with pytest.raises(ConfigError, match="reptile has no query loss"):
        learner_class("reptile")(model, LearnerConfig(loss="mae"))


@pytest.fixture(scope="module")
def skewed():
    """Ratings that ignore user and item: 5 with probability 0.7, else 1 (mean 3.8,
    median 5)."""
    ds = generate(SyntheticConfig(num_users=200, num_items=100, num_ratings=8_000))
    rng = np.random.default_rng(0)
    rating = rng.choice(np.array([1.0, 5.0], dtype=np.float32), len(ds.interactions),
                        p=[0.3, 0.7])
    ds = replace(ds, interactions=replace(ds.interactions, rating=rating))
    return ds, split_dataset(ds, SplitConfig(seed=0))


def _fit(name: str, loss: str, skewed):
    ds, split = skewed
    torch.manual_seed(0)
    model = FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,))
    config = LearnerConfig(epochs=12, meta_batch_size=16, inner_steps=2, meta_lr=1e-2,
                           patience=None, batch_size=256, loss=loss)
    learner = learner_class(name)(model, config).fit(split.train, ds, split.validation)
    record = learner.history_[-1]
    assert record["val_loss"] == record[f"val_{loss}"]  # early stopping watches the loss
    return learner, record


def test_plain_training_predicts_the_mean_or_the_median(skewed) -> None:
    new_users = skewed[1].scenarios["new_users"]
    start = {loss: float(np.median(_fit("pretrain", loss, skewed)[0]
                                   .predict_tasks(new_users, steps=0)))
             for loss in ("mse", "mae")}
    assert start["mse"] == pytest.approx(3.8, abs=0.3)
    assert start["mae"] > 4.6


@pytest.mark.parametrize("name", ["maml-r", "ridge"])
def test_meta_learning_on_absolute_error_lowers_it(name: str, skewed) -> None:
    """Adaptation descends squared error either way (towards a user's mean of 1s and 5s);
    meta-learning the query MAE learns a start and step that end nearer the median."""
    mse, mae = (_fit(name, loss, skewed)[1] for loss in ("mse", "mae"))
    assert mae["val_mae"] < mse["val_mae"] - 0.05
