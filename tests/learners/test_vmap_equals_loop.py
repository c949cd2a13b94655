"""The vectorised meta-gradients equal a plain per-task loop (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.data.splits import SplitConfig, split_dataset
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.learners import LearnerConfig, MetaLearner, learner_class
from metarec.learners.reference import reference_meta_gradients
from metarec.models import FeatureMF, FeatureMLP
from metarec.tasks.batch import pad_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

META_LEARNERS = ["maml", "fomaml", "metasgd", "maml-r", "anil", "reptile", "ridge"]


@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig(num_users=60, num_items=50, num_ratings=2000))
    split = split_dataset(ds, SplitConfig(seed=0))
    # 4 tasks of different support sizes, so padding and masks take part.
    batch = pad_tasks(split.train, np.array([0, 3, 5, 7]), ds.users, ds.items)
    assert len(set(batch.support_mask.sum(1).tolist())) > 1
    return ds, batch


def _learner(name: str, ds, steps: int = 2, kind: str = "FeatureMLP", loss: str = "mse",
             adapt_loss: str = "mse", size_exponent: bool = False,
             rank_weight: float = 0.0) -> MetaLearner:
    torch.manual_seed(0)
    if kind == "FeatureMF":
        model = FeatureMF.for_dataset(ds, embedding_dim=4, hidden=(8,), factors=3)
    else:
        model = FeatureMLP.for_dataset(ds, embedding_dim=4, hidden=(8,))
    learner = learner_class(name)(model, LearnerConfig(dtype="float64", inner_steps=steps,
                                                       inner_lr=0.1, loss=loss,
                                                       adapt_loss=adapt_loss,
                                                       size_exponent=size_exponent,
                                                       rank_weight=rank_weight))
    assert isinstance(learner, MetaLearner)
    if name == "metasgd":
        # Distinct per-element step sizes, so a mix-up of names or elements shows.
        with torch.no_grad():
            for p in learner.inner_lrs.values():
                p.copy_(torch.rand(p.shape, generator=torch.Generator().manual_seed(1),
                                   dtype=p.dtype) * 0.2)
    if name == "ridge":
        # Distinct per-element prior precisions, for the same reason.
        with torch.no_grad():
            for p in learner.log_precisions.values():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2),
                                    dtype=p.dtype))
    return learner


@pytest.mark.parametrize("name", META_LEARNERS)
@pytest.mark.parametrize("kind", ["FeatureMLP", "FeatureMF"])
def test_vmap_meta_gradients_equal_the_loop(name: str, kind: str, data) -> None:
    _check_against_the_loop(name, kind, "mse", data)


@pytest.mark.parametrize("name", [n for n in META_LEARNERS if n != "reptile"])
def test_vmap_meta_gradients_equal_the_loop_with_absolute_error(name: str, data) -> None:
    _check_against_the_loop(name, "FeatureMLP", "mae", data)


@pytest.mark.parametrize("kind", ["FeatureMLP", "FeatureMF"])
@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_robust_ridge_meta_gradients_equal_the_loop(kind: str, loss: str, data) -> None:
    _check_against_the_loop("ridge", kind, loss, data, adapt_loss="mae")


@pytest.mark.parametrize("adapt_loss", ["mse", "mae"])
def test_ridge_with_a_size_exponent_meta_gradients_equal_the_loop(adapt_loss: str,
                                                                  data) -> None:
    """The learned exponent of the support size scales each task's prior (tasks of
    several sizes); its meta-gradient too must match the loop's."""
    _check_against_the_loop("ridge", "FeatureMF", "mse", data, adapt_loss=adapt_loss,
                            size_exponent=0.7)


@pytest.mark.parametrize("kind", ["FeatureMLP", "FeatureMF"])
@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_ridge_with_a_ranking_term_meta_gradients_equal_the_loop(kind: str, loss: str,
                                                                 data) -> None:
    """The listwise term over each task's query rows (padded rows masked out) added to
    the query loss; the loop computes it on the selected rows."""
    _check_against_the_loop("ridge", kind, loss, data, adapt_loss="mae", rank_weight=0.7)


def _check_against_the_loop(name: str, kind: str, loss: str, data,
                            adapt_loss: str = "mse", size_exponent: float | None = None,
                            rank_weight: float = 0.0) -> None:
    ds, batch = data
    learner = _learner(name, ds, 2, kind, loss, adapt_loss, size_exponent is not None,
                       rank_weight)
    if size_exponent is not None:
        assert len(set(batch.support_mask.sum(1).tolist())) > 1
        with torch.no_grad():
            learner.size_exponent.fill_(size_exponent)
    loss, grads = learner.meta_gradients(batch)
    ref_loss, ref_grads = reference_meta_gradients(learner, batch)
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    assert set(grads) == set(ref_grads) == set(learner.meta_parameters())
    for key, ref in ref_grads.items():
        got = grads[key]
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-11, msg=f"{name}: {key}")
    assert any(g.abs().sum() > 0 for g in ref_grads.values())


def test_second_order_differs_from_first_order(data) -> None:
    """A guard on the reference itself: MAML and FOMAML must not coincide."""
    ds, batch = data
    _, second = reference_meta_gradients(_learner("maml", ds), batch)
    _, first = reference_meta_gradients(_learner("fomaml", ds), batch)
    assert any(not torch.allclose(second[k], first[k]) for k in second)


def test_what_each_learner_adapts(data) -> None:
    """The reference follows each learner's scope and order; pin those choices here."""
    ds, _ = data
    expected = {"maml": ("all", False), "fomaml": ("all", True), "metasgd": ("head", False),
                "maml-r": ("head", False), "anil": ("output", False),
                "reptile": ("all", True), "ridge": ("output", False)}
    for name, (scope, first_order) in expected.items():
        learner = _learner(name, ds)
        assert (learner.scope, learner.first_order) == (scope, first_order), name
        names = learner.adapted_names()
        if scope == "all":
            assert names == [n for n, _ in learner.model.named_parameters()]
        elif scope == "head":
            assert names == learner.model.head_names() and learner.head_only()
        else:
            assert names == ["head.2.weight", "head.2.bias"] and learner.head_only()


@pytest.mark.parametrize("name", META_LEARNERS)
def test_one_task_adaptation_equals_the_vmapped_one(name: str, data) -> None:
    """Adapting one user takes the lean path (hand-written MLP gradients for head-only
    learners, eager autograd otherwise): it must give the vmapped path's parameters."""
    ds, batch = data
    learner = _learner(name, ds, steps=3)
    together = learner.adapt(batch)
    for t in range(len(batch)):
        alone = learner.adapt(batch.select(slice(t, t + 1)))
        assert set(alone.params) == set(together.params)
        for key, value in alone.params.items():
            torch.testing.assert_close(value[0], together.params[key][t], rtol=1e-10,
                                       atol=1e-12, msg=f"{name}: task {t} {key}")
    moved = [k for k, v in together.params.items()
             if not torch.equal(v[0], dict(learner.split_params()[0])[k])]
    assert moved, "adaptation changed nothing"


def test_hand_written_mlp_gradients_equal_autograd() -> None:
    from metarec.learners.inner_loop import masked_mse, mlp_mse_gradients, sequential_call

    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3),
                               torch.nn.ReLU(), torch.nn.Linear(3, 1)).double()
    params = dict(head.named_parameters())
    x, ratings = torch.randn(7, 5, dtype=torch.float64), torch.rand(7, dtype=torch.float64) * 4
    mask = torch.tensor([1, 1, 0, 1, 1, 0, 1], dtype=torch.bool)
    loss = masked_mse(sequential_call(head, params, x).squeeze(-1), ratings, mask)
    expected = torch.autograd.grad(loss, list(params.values()))
    got = mlp_mse_gradients(list(head), {k: v.detach() for k, v in params.items()}, x,
                            ratings, mask.double() / mask.sum())
    for (key, _), want in zip(params.items(), expected, strict=True):
        torch.testing.assert_close(got[key], want, rtol=1e-12, atol=1e-14, msg=key)


@pytest.mark.parametrize(("fixed_names", "loss"), [((), "mse"), (("4.weight", "4.bias"), "mse"),
                                                   (("0.bias",), "mse"), ((), "mae")])
def test_kernel_form_query_loss_equals_adapt_then_predict(fixed_names, loss) -> None:
    """MAML-R's meta-loss in kernel form (first layer through the support Gram matrix):
    the same loss and the same second-order gradients as adapting with autograd."""
    from metarec.learners.inner_loop import Forward, adapt, masked_loss, mlp_query_loss_kernel

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.head = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(),
                                     torch.nn.Linear(5, 4), torch.nn.ReLU(),
                                     torch.nn.Linear(4, 1)).double()
    params = dict(model.head.named_parameters())
    adapted = {k: v for k, v in params.items() if k not in fixed_names}
    fixed = {k: v for k, v in params.items() if k in fixed_names}
    x = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    q = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    ratings, q_ratings = torch.rand(9, dtype=torch.float64) * 4, torch.rand(4).double() * 4
    mask = torch.tensor([1, 1, 1, 0, 1, 1, 1, 1, 0], dtype=torch.bool)
    q_mask = torch.tensor([1, 1, 1, 0], dtype=torch.bool)
    forward = Forward(model, head_only=True)

    new = adapt(forward, adapted, fixed, None, x, ratings, mask, steps=3, lr=0.3,
                first_order=False)
    want = masked_loss(forward({**fixed, **new}, None, q), q_ratings, q_mask, loss)
    got = mlp_query_loss_kernel(list(model.head), adapted, fixed, x, ratings, mask, q,
                                q_ratings, q_mask, steps=3, lr=0.3, loss=loss)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    inputs = [*params.values(), x, q]
    for g, w in zip(torch.autograd.grad(got, inputs), torch.autograd.grad(want, inputs),
                    strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
