"""``learner.average_decay``: a moving average of the trained weights (Polyak averaging)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.learners import Learner, LearnerConfig, learner_class
from metarec.learners.distill import Distill
from metarec.learners.distributed import DistributedMetaTrainer
from metarec.models import FeatureMF, FeatureMLP

pytestmark = pytest.mark.usefixtures("one_thread")

DECAY = 0.8
CONFIG = LearnerConfig(epochs=2, meta_batch_size=16, inner_steps=2, meta_lr=1e-2,
                       patience=None, batch_size=512)


@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig(num_users=120, num_items=80, num_ratings=5_000))
    split = split_dataset(ds, SplitConfig(seed=0))
    return ds, split.train.select(np.arange(64)), split.validation


def _make(name: str, ds, **settings: object) -> Learner:
    torch.manual_seed(0)
    model = (FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=4)
             if name == "ridge" else FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,)))
    return learner_class(name)(model, LearnerConfig(**{**CONFIG.to_dict(), **settings}))


def _recorded(learner: Learner) -> list[list[torch.Tensor]]:
    """Make ``learner`` record its trained tensors after every optimiser step."""
    steps: list[list[torch.Tensor]] = []
    update = learner.update_average

    def record() -> None:
        steps.append([p.detach().clone() for p in learner.averaged_parameters().values()])
        update()

    learner.update_average = record  # type: ignore[method-assign]
    return steps


def _by_hand(steps: list[list[torch.Tensor]], decay: float) -> list[torch.Tensor]:
    average = [t.clone() for t in steps[0]]
    for weights in steps[1:]:
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights, strict=True)]
    return average


@pytest.mark.parametrize("name", ["maml-r", "ridge", "pretrain"])
def test_fitted_model_is_the_moving_average_of_every_step(name: str, data) -> None:
    ds, train, _ = data
    plain = _make(name, ds)
    steps = _recorded(plain)
    plain.fit(train, ds)
    averaged = _make(name, ds, average_decay=DECAY).fit(train, ds)
    # Averaging does not change training: the same losses, epoch by epoch.
    assert [h["train_loss"] for h in averaged.history_] == [
        h["train_loss"] for h in plain.history_]
    assert len(steps) > 4
    fitted = list(averaged.averaged_parameters().values())
    for got, want in zip(fitted, _by_hand(steps, DECAY), strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
    last = steps[-1]
    assert any(not torch.allclose(got, w) for got, w in zip(fitted, last, strict=True))


def test_validation_and_early_stopping_watch_the_average(data) -> None:
    ds, train, val = data
    learner = _make("ridge", ds, average_decay=DECAY)
    learner.fit(train, ds, val)
    best = min(h["val_loss"] for h in learner.history_)
    # The fitted model is the average that scored best, not the weights training left.
    assert learner.validation_loss(val) == pytest.approx(best, abs=1e-9)
    trained = [p.detach().clone() for p in learner.averaged_parameters().values()]
    learner.average_ = [t + 1.0 for t in trained]
    with learner.averaged():
        inside = [p.detach().clone() for p in learner.averaged_parameters().values()]
    for before, during, after in zip(trained, inside, learner.averaged_parameters().values(),
                                     strict=True):
        torch.testing.assert_close(during, before + 1.0)
        torch.testing.assert_close(after.detach(), before)


def test_updates_after_training_leave_the_average_alone(data) -> None:
    # Online learning steps the optimiser of a fitted learner; only fit() averages.
    ds, train, _ = data
    learner = _make("maml-r", ds, average_decay=DECAY).fit(train, ds)
    average = [a.clone() for a in learner.average_]
    learner.apply_gradients({n: torch.ones_like(p)
                             for n, p in learner.meta_parameters().items()})
    for before, after in zip(average, learner.average_, strict=True):
        torch.testing.assert_close(before, after)


def test_off_by_default_and_unchanged(data) -> None:
    ds, train, _ = data
    learner = _make("maml-r", ds).fit(train, ds)
    assert learner.average_ is None
    with learner.averaged():  # nothing to swap in
        pass


def test_distributed_trainer_matches_fit(data) -> None:
    ds, train, val = data
    one = _make("maml-r", ds, average_decay=DECAY).fit(train, ds, val)
    other = DistributedMetaTrainer(_make("maml-r", ds, average_decay=DECAY), train, ds,
                                   val).fit()
    assert [h["val_loss"] for h in other.history_] == pytest.approx(
        [h["val_loss"] for h in one.history_], abs=1e-9)
    for a, b in zip(one.averaged_parameters().values(),
                    other.averaged_parameters().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_distributed_resume_keeps_the_average(data, tmp_path) -> None:
    ds, train, _ = data
    whole = DistributedMetaTrainer(_make("maml-r", ds, average_decay=DECAY), train, ds).fit()
    first = DistributedMetaTrainer(_make("maml-r", ds, average_decay=DECAY), train, ds,
                                   checkpoint_dir=tmp_path, max_steps=3)
    first.fit()
    resumed = DistributedMetaTrainer(_make("maml-r", ds, average_decay=DECAY), train, ds,
                                     checkpoint_dir=tmp_path)
    assert resumed.resume()
    resumed.fit()
    for a, b in zip(whole.averaged_parameters().values(),
                    resumed.learner.averaged_parameters().values(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_decay_out_of_range_is_refused(decay: float) -> None:
    with pytest.raises(ConfigError, match="average_decay"):
        LearnerConfig(average_decay=decay)


def test_distill_refuses_averaging(data) -> None:
    ds, _, _ = data
    with pytest.raises(ConfigError, match="average_decay"):
        Distill(FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,)), None,
                LearnerConfig(average_decay=DECAY))
