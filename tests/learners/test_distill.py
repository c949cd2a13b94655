"""Distillation: alpha = 1 fits the teacher, the teacher helps a student with few labels,
meta-distillation with alpha = 0 is plain meta-training, and bad set-ups fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import CheckpointError, ConfigError
from metarec.learners import LearnerConfig, learner_class
from metarec.learners.distill import (
    Distill,
    DistillConfig,
    parameter_count,
    teacher_pairs,
)
from metarec.learners.transfer import subsample_users
from metarec.models import BiasedMF, FeatureMLP
from metarec.tasks.batch import pad_tasks


@pytest.fixture(scope="module")
def data():
    dataset = generate(SyntheticConfig(num_users=160, num_items=80, num_ratings=5000))
    split = split_dataset(dataset, SplitConfig(seed=0, validation_fraction=0.0))
    cfg = LearnerConfig(epochs=3, patience=None, inner_steps=2, meta_batch_size=16)
    torch.manual_seed(0)
    teacher = learner_class("pretrain")(
        FeatureMLP.for_dataset(dataset, embedding_dim=16, hidden=(32, 32)), cfg).fit(
            split.train, dataset)
    return dataset, split, teacher, cfg


def small(dataset) -> FeatureMLP:
    torch.manual_seed(1)
    return FeatureMLP.for_dataset(dataset, embedding_dim=4, hidden=(8,))


def test_alpha_one_makes_the_student_fit_the_teacher(data) -> None:
    dataset, split, teacher, _ = data
    cfg = LearnerConfig(epochs=15, patience=None, meta_lr=2e-2, batch_size=512)
    student = Distill(small(dataset), teacher, cfg,
                      DistillConfig(alpha=1.0, distill_pairs=2000)).fit(split.train, dataset)
    pairs = split.train.all_ratings()
    user = dataset.users.take(torch.from_numpy(pairs.user))
    item = dataset.items.take(torch.from_numpy(pairs.item))
    with torch.no_grad():
        soft = teacher_pairs([teacher], user, item)
        gap = float(((student.model(user, item) - soft) ** 2).mean())
        label_gap = float(((soft - torch.from_numpy(pairs.rating)) ** 2).mean())
    assert gap < 0.1 * float(soft.var())
    assert gap < 0.05 * label_gap  # it fits the teacher, not the ratings


@pytest.mark.slow
def test_teacher_helps_a_student_with_few_labels() -> None:
    dataset = generate(SyntheticConfig(num_users=400, num_items=150, num_ratings=14000))
    split = split_dataset(dataset, SplitConfig(seed=0, validation_fraction=0.0))
    torch.manual_seed(0)
    teacher = learner_class("pretrain")(
        FeatureMLP.for_dataset(dataset, embedding_dim=16, hidden=(32,)),
        LearnerConfig(epochs=8, patience=None)).fit(split.train, dataset)
    few = subsample_users(split.train, 0.05, 0)
    cfg = LearnerConfig(epochs=15, patience=None, batch_size=64)
    tasks = split.scenarios["new_users"]

    def mae(learner) -> float:
        return float(np.mean(np.abs(learner.predict_tasks(tasks, steps=0) - tasks.query.rating)))

    with_teacher = Distill(small(dataset), teacher, cfg,
                           DistillConfig(alpha=0.7, distill_pairs=6000)).fit(
        few, dataset, pair_users=split.train.users)
    alone = Distill(small(dataset), None, cfg, DistillConfig()).fit(few, dataset)
    assert mae(with_teacher) < mae(alone) - 0.02


def test_meta_distillation_with_alpha_zero_is_plain_meta_training(data) -> None:
    dataset, split, teacher, cfg = data
    student = Distill(small(dataset), teacher, cfg, DistillConfig(student_learner="maml-r"))
    batch = pad_tasks(split.train, np.arange(8), dataset.users, dataset.items)
    loss, grads = student.student_.meta_gradients(batch)
    noise = torch.randn(batch.query_ratings.shape)
    loss0, grads0 = student.student_.meta_gradients(batch, soft_targets=noise, alpha=0.0)
    assert loss0 == pytest.approx(loss, rel=1e-6)
    for name in grads:
        torch.testing.assert_close(grads0[name], grads[name])
    # alpha = 1 with the query ratings as "teacher" targets is the same loss again.
    loss1, _ = student.student_.meta_gradients(batch, soft_targets=batch.query_ratings,
                                               alpha=1.0)
    assert loss1 == pytest.approx(loss, rel=1e-6)
    # A full-parameter student (row-local tables) and one with the closed-form inner loop
    # mix soft targets the same way.
    for name in ("fomaml", "ridge"):
        other = Distill(small(dataset), teacher, cfg, DistillConfig(student_learner=name))
        plain, _ = other.student_.meta_gradients(batch)
        same, _ = other.student_.meta_gradients(batch, soft_targets=batch.query_ratings,
                                                alpha=0.5)
        mixed, _ = other.student_.meta_gradients(batch, soft_targets=noise, alpha=0.5)
        assert same == pytest.approx(plain, rel=1e-6), name
        assert mixed != pytest.approx(plain, rel=1e-3), name


def test_meta_distillation_trains_and_saves(data, tmp_path) -> None:
    dataset, split, teacher, cfg = data
    student = Distill(small(dataset), teacher, LearnerConfig(epochs=1, inner_steps=2),
                      DistillConfig(student_learner="maml-r", alpha=0.5)).fit(split.train, dataset)
    tasks = split.scenarios["new_users"]
    folder = student.save(tmp_path / "s")
    again = Distill.load(folder, features=dataset)
    np.testing.assert_array_equal(again.predict_tasks(tasks), student.predict_tasks(tasks))
    assert again.student_.name == "maml-r"
    with pytest.raises(CheckpointError, match="distill.json"):
        Distill.load(tmp_path / "nothing")


def test_hint_loss_and_ensemble_teacher(data) -> None:
    dataset, split, teacher, cfg = data
    hinted = Distill(small(dataset), teacher, cfg, DistillConfig(hint_weight=0.5))
    assert hinted.hint_.in_features == 4 * 6 and hinted.hint_.out_features == 16 * 6
    hinted.fit(split.train, dataset)
    assert np.isfinite(hinted.history_[-1]["train_loss"])
    ensemble = Distill(small(dataset), [teacher, teacher], cfg, DistillConfig(alpha=1.0))
    assert len(ensemble.teachers) == 2


def test_bad_configurations_raise(data) -> None:
    dataset, _, teacher, cfg = data
    big = FeatureMLP.for_dataset(dataset, embedding_dim=32, hidden=(64, 64))
    with pytest.raises(ConfigError, match="not fewer than the teacher"):
        Distill(big, teacher, cfg)
    mf = BiasedMF(dataset.num_users, dataset.num_items, factors=2)
    assert parameter_count(mf) < parameter_count(teacher.model)
    with pytest.raises(ConfigError, match="hint loss"):
        Distill(mf, teacher, cfg, DistillConfig(hint_weight=1.0))
    with pytest.raises(ConfigError, match="reptile"):
        DistillConfig(student_learner="reptile")
    with pytest.raises(ConfigError, match="alpha"):
        DistillConfig(alpha=1.5)
