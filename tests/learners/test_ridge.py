"""The closed-form (ridge) inner loop: exact on hand-made inputs, a stationary point of
its penalised objective on real tasks, and learning its prior precisions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError
from metarec.learners import LearnerConfig, Pretrain, Ridge
from metarec.learners.inner_loop import Params
from metarec.learners.maml import ANIL
from metarec.learners.ridge import fold_in, ridge_solve
from metarec.models import FeatureMF, FeatureMLP
from metarec.tasks.batch import pad_tasks

pytestmark = pytest.mark.usefixtures("one_thread")


def _line(params: Params, user: object, items: torch.Tensor) -> torch.Tensor:
    return items[:, 0] * params["w"] + params["b"]


def test_hand_made_solution() -> None:
    # Rows x = 1, 2 with ratings 1, 3 (a third, padded row is masked out); start 0, both
    # precisions 1: [[1+4+1, 1+2], [1+2, 2+1]] [w, b] = [1*1 + 2*3, 1 + 3] -> w = 1, b = 1/3.
    items = torch.tensor([[1.0], [2.0], [7.0]], dtype=torch.float64)
    ratings = torch.tensor([1.0, 3.0, 100.0], dtype=torch.float64)
    mask = torch.tensor([True, True, False])
    zero = torch.tensor(0.0, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    out = ridge_solve(_line, {"w": zero, "b": zero}, {}, {"w": one, "b": one}, None, items,
                      ratings, mask)
    assert float(out["w"]) == pytest.approx(1.0, abs=1e-12)
    assert float(out["b"]) == pytest.approx(1 / 3, abs=1e-12)
    # A huge precision keeps that parameter at its start; a tiny one fits freely.
    big = torch.tensor(1e12, dtype=torch.float64)
    tiny = torch.tensor(1e-12, dtype=torch.float64)
    held = ridge_solve(_line, {"w": one, "b": zero}, {}, {"w": big, "b": tiny}, None, items,
                       ratings, mask)
    assert float(held["w"]) == pytest.approx(1.0, abs=1e-9)
    # b then fits the residuals 1 - 1*1 = 0 and 3 - 1*2 = 1: their mean, 0.5.
    assert float(held["b"]) == pytest.approx(0.5, abs=1e-9)


def test_size_exponent_scales_the_prior_by_the_support_size() -> None:
    """Two support rows and exponent 2 scale the precisions by 2^2 = 4: precisions 1/4
    then solve the hand-made problem above exactly as precisions 1 do."""
    items = torch.tensor([[1.0], [2.0], [7.0]], dtype=torch.float64)
    ratings = torch.tensor([1.0, 3.0, 100.0], dtype=torch.float64)
    mask = torch.tensor([True, True, False])
    zero = torch.tensor(0.0, dtype=torch.float64)
    quarter = torch.tensor(0.25, dtype=torch.float64)
    out = ridge_solve(_line, {"w": zero, "b": zero}, {}, {"w": quarter, "b": quarter}, None,
                      items, ratings, mask, size_exponent=torch.tensor(2.0, dtype=torch.float64))
    assert float(out["w"]) == pytest.approx(1.0, abs=1e-12)
    assert float(out["b"]) == pytest.approx(1 / 3, abs=1e-12)


def test_size_exponent_is_learned_saved_and_ridge_only(data, tmp_path) -> None:
    ds, split, _ = data
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    learner = Ridge(model, LearnerConfig(epochs=3, meta_lr=1e-2, patience=None,
                                         size_exponent=True))
    assert float(learner.learner_parameters()["size_exponent"].detach()) == 0.0
    learner.fit(split.train, ds)
    gamma = learner.learner_parameters()["size_exponent"].detach()
    assert float(gamma) != 0.0
    # Every epoch's record carries it: the last one is the final value.
    assert learner.history_[-1]["size_exponent"] == float(gamma)
    assert len({r["size_exponent"] for r in learner.history_}) == 3
    loaded = Ridge.load(learner.save(tmp_path / "ridge"), features=ds)
    assert torch.equal(loaded.learner_parameters()["size_exponent"], gamma)
    np.testing.assert_array_equal(loaded.predict_tasks(split.scenarios["new_users"]),
                                  learner.predict_tasks(split.scenarios["new_users"]))
    with pytest.raises(ConfigError, match="size_exponent is for ridge"):
        Pretrain(FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3),
                 LearnerConfig(size_exponent=True))


@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig(num_users=60, num_items=50, num_ratings=2000))
    split = split_dataset(ds, SplitConfig(seed=0))
    return ds, split, pad_tasks(split.train, np.arange(6), ds.users, ds.items)


def _ridge(kind: str, ds, precision: float = 1.0) -> Ridge:
    torch.manual_seed(0)
    if kind.startswith("FeatureMF"):
        joint = (6,) if kind == "FeatureMF-joint" else ()
        model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3,
                                      joint_hidden=joint)
        if joint:
            with torch.no_grad():  # the joint MLP's output starts at zero: make it count
                model.head.joint[-1].weight.normal_(0.0, 0.5)
    else:
        model = FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,))
    return Ridge(model, LearnerConfig(dtype="float64", prior_precision=precision))


@pytest.mark.parametrize("kind", ["FeatureMLP", "FeatureMF", "FeatureMF-joint"])
def test_adapted_parameters_are_the_penalised_minimum(kind: str, data) -> None:
    """The gradient of support SSE + prior penalty is zero at the adapted parameters."""
    ds, _, batch = data
    learner = _ridge(kind, ds, precision=0.5)
    adapted = learner.adapt(batch)
    start, fixed = learner.split_params()
    forward = learner.forward_fn()
    inputs = learner.task_inputs(batch.to(dtype=torch.float64), query=False)
    precision = {k: v.detach() for k, v in learner.precisions().items()}
    for t in range(len(batch)):
        params = {k: v[t].clone().requires_grad_() for k, v in adapted.params.items()}
        user, items, ratings, mask = (x[t] if isinstance(x, torch.Tensor)
                                      else {k: v[t] for k, v in x.items()} for x in inputs)
        pred = forward({**fixed, **params}, user, items)
        objective = (((pred - ratings) ** 2) * mask).sum() + sum(
            (precision[k] * (params[k] - start[k].detach()) ** 2).sum() for k in params)
        grads = torch.autograd.grad(objective, list(params.values()))
        assert all(float(g.abs().max()) < 1e-8 for g in grads)
        assert any(not torch.equal(params[k].detach(), start[k]) for k in params)


@pytest.mark.parametrize("kind", ["FeatureMLP", "FeatureMF", "FeatureMF-joint"])
def test_written_out_design_matrix_equals_forward_mode_ad(kind: str, data) -> None:
    """``Forward.linearised`` (one forward pass) gives jacfwd's design matrix and the
    predictions, and the meta-gradients through the solve are the same either way."""
    ds, _, batch = data
    learner = _ridge(kind, ds, precision=0.5)
    start, fixed = learner.split_params()
    forward = learner.forward_fn()
    _, items, *_ = learner.task_inputs(batch.to(dtype=torch.float64), query=False)
    exact = forward.linearised({**fixed, **start}, list(start), items)
    assert exact is not None

    def predict(params: Params) -> torch.Tensor:
        return forward({**fixed, **params}, None, items)

    jac = torch.func.jacfwd(predict)(start)
    want = torch.cat([jac[n].reshape(*items.shape[:-1], -1) for n in start], -1)
    torch.testing.assert_close(exact[0], want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(exact[1], predict(start), rtol=1e-12, atol=1e-12)
    # Another set of names, or a forward over whole models, is left to forward-mode AD.
    assert forward.linearised({**fixed, **start}, list(start)[:1] + ["x"], items) is None
    assert type(forward)(learner.model).linearised(start, list(start), items) is None

    loss, written = learner.meta_gradients(batch)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(forward), "linearised", lambda *args: None)
        reference_loss, reference = learner.meta_gradients(batch)
    assert loss == pytest.approx(reference_loss, rel=1e-12)
    assert any(float(g.abs().max()) > 0 for g in written.values())
    for name, got in written.items():
        torch.testing.assert_close(got, reference[name], rtol=1e-10, atol=1e-12)


def test_zero_steps_or_an_empty_support_set_means_no_adaptation(data) -> None:
    ds, _, batch = data
    learner = _ridge("FeatureMF", ds)
    start = learner.split_params()[0]
    adapted = learner.adapt(batch, steps=0)
    for k, v in adapted.params.items():
        assert torch.equal(v[0], start[k].detach())
    # A user with no ratings (every support row masked out) keeps the start exactly.
    mask = batch.support_mask.clone()
    mask[1] = False
    adapted = learner.adapt(replace(batch, support_mask=mask))
    for k, v in adapted.params.items():
        torch.testing.assert_close(v[1], start[k].detach(), rtol=0, atol=1e-12)
        assert not torch.equal(v[0], start[k].detach())


def test_precisions_are_learned_and_saved(data, tmp_path) -> None:
    ds, split, _ = data
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    learner = Ridge(model, LearnerConfig(epochs=3, meta_lr=1e-2, patience=None))
    before = {k: v.detach().clone() for k, v in learner.learner_parameters().items()}
    learner.fit(split.train, ds)
    after = learner.learner_parameters()
    assert set(before) == {"precision.user__bias"}
    assert any(not torch.equal(before[k], after[k].detach()) for k in before)
    loaded = Ridge.load(learner.save(tmp_path / "ridge"), features=ds)
    for k, v in after.items():
        assert torch.equal(loaded.learner_parameters()[k], v.detach())


def test_prior_precision_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="prior_precision"):
        LearnerConfig(prior_precision=0.0)


def test_fold_in_picks_the_best_precision_on_validation(data) -> None:
    """The fold-in control: a trained model's output layer solved per user, the prior
    precision chosen on validation users; the trained model itself is not changed."""
    ds, split, _ = data
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    trained = Pretrain(model, LearnerConfig(epochs=2, patience=None)).fit(split.train, ds)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grid = (0.01, 1.0, 100.0)
    chosen = fold_in(trained, split.validation, grid)
    losses = {p: fold_in(trained, split.validation, (p,)).validation_loss(split.validation)
              for p in grid}
    assert chosen.config.prior_precision == min(losses, key=losses.get)
    assert len(set(losses.values())) == 3
    new_users = split.scenarios["new_users"]
    assert np.isfinite(chosen.predict_tasks(new_users)).all()
    assert chosen.model is model
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # Without validation tasks it keeps the learner's own prior precision.
    assert fold_in(trained, None).config.prior_precision == trained.config.prior_precision
    # The robust solve, as `ridge` with adapt_loss "mae" takes it: other predictions.
    robust = fold_in(trained, split.validation, grid, adapt_loss="mae")
    assert robust.config.adapt_loss == "mae" and trained.config.adapt_loss == "mse"
    assert not np.allclose(robust.predict_tasks(new_users), chosen.predict_tasks(new_users))


def _constant(params: Params, user: object, items: torch.Tensor) -> torch.Tensor:
    return items[:, 0] * 0 + params["b"]


def test_robust_solve_moves_towards_the_median() -> None:
    """One parameter b fitted to 4, 4, 4, 5, 1 (the outlier 1) with a negligible prior:
    squared error gives the mean 3.6; the robust fit (absolute error, Huber below 0.25)
    stays near the median 4, which the reweighted solves approach from the mean."""
    items = torch.zeros(5, 1, dtype=torch.float64)
    ratings = torch.tensor([4.0, 4.0, 4.0, 5.0, 1.0], dtype=torch.float64)
    mask = torch.ones(5, dtype=torch.bool)
    start = {"b": torch.tensor(0.0, dtype=torch.float64)}
    prior = {"b": torch.tensor(1e-9, dtype=torch.float64)}
    plain = ridge_solve(_constant, start, {}, prior, None, items, ratings, mask)
    robust = ridge_solve(_constant, start, {}, prior, None, items, ratings, mask,
                         robust_floor=0.25)
    assert float(plain["b"]) == pytest.approx(3.6, abs=1e-6)
    # Each reweighted solve is the weighted mean at the last residuals (floor 0.25; from 3.6:
    # weights 1/0.8 x3, 1/2.8, 1/5.2 -> 3.902..., then 3.97..., then 3.99...).
    b = 3.6
    for _ in range(3):
        w = 1 / np.maximum(np.abs(ratings.numpy() - b), 0.25)
        b = float(np.sum(w * ratings.numpy()) / np.sum(w))
    assert float(robust["b"]) == pytest.approx(b, abs=1e-6)
    assert 3.95 < float(robust["b"]) < 4.0
    # Padding rows count in neither fit.
    padded = ridge_solve(_constant, start, {}, prior, None, torch.zeros(6, 1,
                         dtype=torch.float64), torch.cat([ratings, ratings.new_tensor([9.0])]),
                         torch.cat([mask, torch.tensor([False])]), robust_floor=0.25)
    assert float(padded["b"]) == pytest.approx(float(robust["b"]), abs=1e-9)


def test_only_ridge_takes_a_robust_adaptation(data) -> None:
    ds, _, _ = data
    Ridge(FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,)),
          LearnerConfig(adapt_loss="mae"))
    with pytest.raises(ConfigError, match="adapt_loss='mae' is for ridge"):
        Pretrain(FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,)),
                 LearnerConfig(adapt_loss="mae"))
    with pytest.raises(ConfigError, match="adapt_loss"):
        LearnerConfig(adapt_loss="huber")


def _bias(params: Params, user: object, items: torch.Tensor) -> torch.Tensor:
    return params["b"] + 0 * items[:, 0]


def test_memory_is_solved_jointly_with_a_shift_of_its_own() -> None:
    """f = b, support rating 1, one remembered rating 3, start 0, precision 1, shift
    precision 1: minimise (1-b)^2 + (3-b-d)^2 + b^2 + d^2 -> d = (3-b)/2, 3b - 4 + d = 0,
    so b = 1 (0.5 without the memory)."""
    x = torch.tensor([[0.0], [0.0]], dtype=torch.float64)
    zero = torch.tensor(0.0, dtype=torch.float64)
    one = torch.tensor(1.0, dtype=torch.float64)
    own = (None, x, torch.tensor([1.0, 9.0], dtype=torch.float64), torch.tensor([True, False]))
    old = (x, torch.tensor([3.0, 9.0], dtype=torch.float64), torch.tensor([True, False]))
    plain = ridge_solve(_bias, {"b": zero}, {}, {"b": one}, *own)
    assert float(plain["b"]) == pytest.approx(0.5, abs=1e-12)
    joint = ridge_solve(_bias, {"b": zero}, {}, {"b": one}, *own, memory=old, memory_shift=1.0)
    assert float(joint["b"]) == pytest.approx(1.0, abs=1e-12)


def test_memory_precision_limits_are_support_and_no_memory() -> None:
    """A huge shift precision counts the remembered rows as support; a tiny one lets the
    shift absorb them, leaving the solution without them (the hand-made line problem)."""
    items = torch.tensor([[1.0], [2.0], [7.0]], dtype=torch.float64)
    ratings = torch.tensor([1.0, 3.0, 100.0], dtype=torch.float64)
    mask = torch.tensor([True, True, False])
    old_items = torch.tensor([[3.0], [0.5]], dtype=torch.float64)
    old_ratings = torch.tensor([2.0, 4.0], dtype=torch.float64)
    zero = torch.tensor(0.0, dtype=torch.float64)
    prec = {"w": torch.tensor(1.0, dtype=torch.float64),
            "b": torch.tensor(2.0, dtype=torch.float64)}
    start = {"w": zero, "b": zero}
    for floor in (None, 0.25):
        pooled = ridge_solve(_line, start, {}, prec, None, torch.cat([items, old_items]),
                             torch.cat([ratings, old_ratings]),
                             torch.cat([mask, torch.tensor([True, True])]), robust_floor=floor)
        alone = ridge_solve(_line, start, {}, prec, None, items, ratings, mask,
                            robust_floor=floor)
        memory = (old_items, old_ratings, torch.tensor([True, True]))
        big = ridge_solve(_line, start, {}, prec, None, items, ratings, mask,
                          robust_floor=floor, memory=memory, memory_shift=1e9)
        tiny = ridge_solve(_line, start, {}, prec, None, items, ratings, mask,
                           robust_floor=floor, memory=memory, memory_shift=1e-9)
        for n in start:
            assert float(big[n]) == pytest.approx(float(pooled[n]), abs=1e-6)
            assert float(tiny[n]) == pytest.approx(float(alone[n]), abs=1e-6)
        assert abs(float(pooled["w"]) - float(alone["w"])) > 0.05


def test_memory_level_lets_the_remembered_rows_differ_by_a_constant() -> None:
    """With a huge shift precision and a level, the solve is least squares over
    ``[x, 1, 0]`` (support) and ``[x, 1, 1]`` (memory) rows with priors (1, 2, 1e-3)."""
    items = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    ratings = torch.tensor([1.0, 3.0], dtype=torch.float64)
    old_items = torch.tensor([[3.0], [0.5], [1.5]], dtype=torch.float64)
    old_ratings = torch.tensor([2.0, 4.0, 2.5], dtype=torch.float64)
    prec = {"w": torch.tensor(1.0, dtype=torch.float64),
            "b": torch.tensor(2.0, dtype=torch.float64)}
    zero = torch.tensor(0.0, dtype=torch.float64)
    out = ridge_solve(_line, {"w": zero, "b": zero}, {}, prec, None, items, ratings,
                      torch.tensor([True, True]),
                      memory=(old_items, old_ratings, torch.tensor([True] * 3)),
                      memory_shift=1e9, memory_level=1e-3)
    x = np.array([[1, 1, 0], [2, 1, 0], [3, 1, 1], [0.5, 1, 1], [1.5, 1, 1]])
    r = np.array([1, 3, 2, 4, 2.5])
    want = np.linalg.solve(x.T @ x + np.diag([1, 2, 1e-3]), x.T @ r)
    assert float(out["w"]) == pytest.approx(want[0], abs=1e-6)
    assert float(out["b"]) == pytest.approx(want[1], abs=1e-6)
    # The constant changes the solution (the memory's level differs from the support's).
    pooled = ridge_solve(_line, {"w": zero, "b": zero}, {}, prec, None, items, ratings,
                         torch.tensor([True, True]),
                         memory=(old_items, old_ratings, torch.tensor([True] * 3)),
                         memory_shift=1e9)
    assert abs(float(pooled["b"]) - want[1]) > 0.05


@pytest.fixture(scope="module")
def trained_ridge(data):
    ds, split, _ = data
    torch.manual_seed(0)
    model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    learner = Ridge(model, LearnerConfig(epochs=2, patience=None, dtype="float64",
                                         adapt_loss="mae"))
    return learner.fit(split.train, ds)


def _with_memory(learner: Ridge, precision: float | None, level: bool = False) -> Ridge:
    out = Ridge(learner.model, replace(learner.config, memory_precision=precision,
                                       memory_level=level))
    out.load_state_dict(learner.state_dict())
    out.features_, out.known_ = learner.features_, learner.known_
    return out


def test_memory_uses_training_ratings_of_trained_users_only(data, trained_ridge) -> None:
    """`predict_tasks` with a memory: unchanged for users training never saw; for users
    it saw, a huge shift precision predicts as their training ratings added to the support
    (`TaskSet.with_history`), a tiny one as without them, and one in between otherwise."""
    ds, split, _ = data
    plain = trained_ridge.predict_tasks
    new_users = split.scenarios["new_users"]
    np.testing.assert_array_equal(_with_memory(trained_ridge, 1.0).predict_tasks(new_users),
                                  plain(new_users))
    new_items = split.scenarios["new_items"]
    assert np.isin(new_items.users, trained_ridge.known_.user).sum() >= 5
    pooled = plain(new_items.with_history(trained_ridge.known_))
    np.testing.assert_allclose(_with_memory(trained_ridge, 1e9).predict_tasks(new_items),
                               pooled, atol=1e-5)
    np.testing.assert_allclose(_with_memory(trained_ridge, 1e-9).predict_tasks(new_items),
                               plain(new_items), atol=1e-5)
    middle = _with_memory(trained_ridge, 1.0).predict_tasks(new_items)
    assert np.abs(middle - pooled).max() > 1e-3 and np.abs(middle - plain(new_items)).max() > 1e-3
    # One task at a time (serving one user) gives the same predictions.
    one = _with_memory(trained_ridge, 1.0)
    single = np.concatenate([one.predict_tasks(new_items.select(np.array([t])))
                             for t in range(len(new_items))])
    np.testing.assert_allclose(single, middle, atol=1e-10)
    # Scoring the whole catalogue (every remembered film is a candidate) still remembers.
    user = int(new_items.users[np.isin(new_items.users, trained_ridge.known_.user)][0])
    support = new_items.support.subset(new_items.support.user == user)
    every = np.arange(ds.num_items)
    assert np.abs(one.score_items(user, support, every)
                  - trained_ridge.score_items(user, support, every)).max() > 1e-3
    # A level of its own for the memory: other predictions for trained users only.
    level = _with_memory(trained_ridge, 1.0, level=True)
    assert np.abs(level.predict_tasks(new_items) - middle).max() > 1e-3
    np.testing.assert_array_equal(level.predict_tasks(new_users), plain(new_users))


def test_memory_is_saved_and_loaded(data, trained_ridge, tmp_path) -> None:
    ds, split, _ = data
    new_items = split.scenarios["new_items"]
    learner = _with_memory(trained_ridge, 1.0)
    loaded = Ridge.load(learner.save(tmp_path / "memory"), features=ds)
    for field in ("user", "item", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(loaded.known_, field),
                                      getattr(learner.known_, field))
        assert getattr(loaded.known_, field).dtype == getattr(learner.known_, field).dtype
    # Indices are stored as int32: 20 bytes a rating, not 28.
    stored = load_numpy(str(tmp_path / "memory" / "memory.safetensors"))
    assert stored["user"].dtype == stored["item"].dtype == np.int32
    np.testing.assert_array_equal(loaded.predict_tasks(new_items),
                                  learner.predict_tasks(new_items))
    # Every fitted learner writes the ratings it saw (recommend's default support).
    assert (trained_ridge.save(tmp_path / "plain") / "memory.safetensors").exists()


def test_memory_precision_is_ridge_only_and_positive(data) -> None:
    ds, _, _ = data
    with pytest.raises(ConfigError, match="memory_precision is for ridge"):
        Pretrain(FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,)),
                 LearnerConfig(memory_precision=1.0))
    with pytest.raises(ConfigError, match="memory_precision must be > 0"):
        LearnerConfig(memory_precision=0.0)
    trained = Pretrain(FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3),
                       LearnerConfig(epochs=1))
    assert fold_in(trained, None, memory_precision=2.0).config.memory_precision == 2.0
    assert fold_in(trained, None, memory_precision=2.0, memory_level=True).config.memory_level
    with pytest.raises(ConfigError, match="memory_level needs memory_precision"):
        LearnerConfig(memory_level=True)


def test_zero_steps_train_without_adaptation_too(data) -> None:
    """Training had solved through the ridge at 0 steps while validation and prediction
    did not adapt: its loss must be the unadapted query loss, and no gradient may reach
    the precisions."""
    ds, _, batch = data
    learner = _ridge("FeatureMF", ds)
    learner.config = replace(learner.config, inner_steps=0)
    loss, grads = learner.meta_gradients(batch)
    anil = ANIL(learner.model, replace(learner.config, inner_steps=0))
    expected, _ = anil.meta_gradients(batch)
    assert loss == pytest.approx(expected, rel=1e-6)
    for name, grad in grads.items():
        if name.startswith("precision."):
            assert not grad.abs().any(), name
