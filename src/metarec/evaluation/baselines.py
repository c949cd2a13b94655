"""Non-learned and bias baselines, all with one small surface.

Construct with hyper-parameters (stored as given), ``fit(train, num_users, num_items)``
(learned state ends in ``_``), then either ``predict_tasks(tasks)``: one prediction per
query row of a :class:`~metarec.tasks.TaskSet`, using each task's support rows as all that
is known about its user at test time, or ``score_items(user_support, items)``: scores of one
user (known by their support ratings) over candidate items, for ranking. Items never seen
in training fall back to the global mean (zero bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from metarec.data.dataset import Interactions
from metarec.errors import DataError
from metarec.models.item_similarity import damped_biases, shrunk_mean
from metarec.tasks.taskset import TaskSet


class Baseline(Protocol):
    """The surface every baseline offers."""

    def fit(self, train: Interactions, num_users: int, num_items: int) -> Baseline: ...

    def predict_tasks(self, tasks: TaskSet) -> np.ndarray: ...

    def score_items(self, user_support: Interactions, items: np.ndarray) -> np.ndarray: ...


def _check_train(train: Interactions, num_users: int, num_items: int) -> None:
    if len(train) == 0:
        raise DataError("cannot fit a baseline on an empty set of training ratings")
    if train.user.min() < 0 or train.user.max() >= num_users:
        raise DataError(f"training user indices must lie in 0..{num_users - 1}; got "
                        f"{train.user.min()}..{train.user.max()}", field="user")
    if train.item.min() < 0 or train.item.max() >= num_items:
        raise DataError(f"training item indices must lie in 0..{num_items - 1}; got "
                        f"{train.item.min()}..{train.item.max()}", field="item")


def _require_fitted(model: object, attribute: str) -> None:
    if not hasattr(model, attribute):
        raise RuntimeError(f"{type(model).__name__} is not fitted; call "
                           "fit(train, num_users, num_items) first")


def _lookup(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` (entries of a vector or rows of a table), zeros for indices outside
    the fitted range (unseen entities)."""
    index = np.asarray(index, dtype=np.int64)
    inside = (index >= 0) & (index < len(values))
    if not len(values):
        return np.zeros(index.shape + values.shape[1:])
    inside = inside.reshape(inside.shape + (1,) * (values.ndim - 1))
    return np.where(inside, values[np.where(inside.reshape(index.shape), index, 0)], 0.0)


def _task_of_rows(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


class GlobalMean:
    """Predicts the mean training rating ``mu`` for every (user, item)."""

    def fit(self, train: Interactions, num_users: int, num_items: int) -> GlobalMean:
        _check_train(train, num_users, num_items)
        self.global_mean_ = float(np.mean(train.rating, dtype=np.float64))
        return self

    def predict_tasks(self, tasks: TaskSet) -> np.ndarray:
        _require_fitted(self, "global_mean_")
        return np.full(len(tasks.query), self.global_mean_)

    def score_items(self, user_support: Interactions, items: np.ndarray) -> np.ndarray:
        _require_fitted(self, "global_mean_")
        return np.full(len(items), self.global_mean_)


class Biases:
    """Damped user and item biases: ``r_hat(u, i) = mu + b_u + b_i``.

    Fitted by ``passes`` alternating rounds of shrunk means (Surprise's ``baseline_only``
    ALS; one pass is LensKit's damped ``Bias``), items first:
    ``b_i = sum_{u in R(i)} (r_ui - mu - b_u) / (|R(i)| + reg_item)``, then
    ``b_u = sum_{i in R(u)} (r_ui - mu - b_i) / (|R(u)| + reg_user)``, starting from
    ``b_u = 0``. At test time a user's bias is recomputed from their support ratings with
    the same formula and the training item biases (the support is all that is known about
    the user); an item unseen in training has ``b_i = 0``.
    """

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, passes: int = 10) -> None:
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.passes = passes

    def fit(self, train: Interactions, num_users: int, num_items: int) -> Biases:
        _check_train(train, num_users, num_items)
        biases = damped_biases(train.user, train.item, train.rating, num_users, num_items,
                               self.reg_user, self.reg_item, self.passes)
        self.global_mean_ = biases.global_mean
        self.user_bias_ = biases.user_bias
        self.item_bias_ = biases.item_bias
        return self

    def _support_bias(self, support: Interactions, task_of_row: np.ndarray,
                      num_tasks: int) -> np.ndarray:
        residual = (support.rating.astype(np.float64) - self.global_mean_
                    - _lookup(self.item_bias_, support.item))
        return shrunk_mean(task_of_row, residual, num_tasks, self.reg_user)

    def predict_tasks(self, tasks: TaskSet) -> np.ndarray:
        _require_fitted(self, "item_bias_")
        user_bias = self._support_bias(tasks.support, _task_of_rows(tasks.support_offsets),
                                       len(tasks))
        return (self.global_mean_ + user_bias[_task_of_rows(tasks.query_offsets)]
                + _lookup(self.item_bias_, tasks.query.item))

    def score_items(self, user_support: Interactions, items: np.ndarray) -> np.ndarray:
        _require_fitted(self, "item_bias_")
        user_bias = self._support_bias(user_support, np.zeros(len(user_support), np.int64), 1)
        return self.global_mean_ + user_bias[0] + _lookup(self.item_bias_, items)


class Popularity:
    """Predicts each item's damped mean rating and ranks items by their number of ratings.

    ``r_hat(u, i) = mu + sum_{u in R(i)} (r_ui - mu) / (|R(i)| + reg_item)`` (the item mean
    shrunk towards the global mean ``mu``; ``mu`` for unseen items).
    :meth:`score_items` returns ``|R(i)|``, the number of training ratings of each item, so
    that ranking by it is most-popular-first; the user's support is not used.
    """

    def __init__(self, reg_item: float = 10.0) -> None:
        self.reg_item = reg_item

    def fit(self, train: Interactions, num_users: int, num_items: int) -> Popularity:
        _check_train(train, num_users, num_items)
        rating = train.rating.astype(np.float64)
        mu = float(rating.mean())
        self.global_mean_ = mu
        self.item_mean_ = mu + shrunk_mean(train.item, rating - mu, num_items, self.reg_item)
        self.item_count_ = np.bincount(train.item, minlength=num_items)
        return self

    def predict_tasks(self, tasks: TaskSet) -> np.ndarray:
        _require_fitted(self, "item_mean_")
        return self.global_mean_ + _lookup(self.item_mean_ - self.global_mean_,
                                           tasks.query.item)

    def score_items(self, user_support: Interactions, items: np.ndarray) -> np.ndarray:
        _require_fitted(self, "item_count_")
        return _lookup(self.item_count_.astype(np.float64), items)

    def rank_tasks(self, tasks: TaskSet) -> np.ndarray:
        """The ranking score of every query row of ``tasks``: its item's rating count
        (what the ranking metrics rank ``popularity`` by; 0 for unseen items)."""
        _require_fitted(self, "item_count_")
        return _lookup(self.item_count_.astype(np.float64), tasks.query.item)


def _grouped_ridge(group: np.ndarray, design: np.ndarray, target: np.ndarray,
                   num_groups: int, precision: np.ndarray) -> np.ndarray:
    """For every group ``g`` in 0..num_groups-1 the ridge solution ``w_g`` ``[P]`` of
    ``min sum_{rows j of g} (target_j - design_j . w)^2 + sum_k precision_k w_k^2``, all
    groups in one batched solve (a group without rows gets 0)."""
    group = np.asarray(group, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    x = torch.from_numpy(np.ascontiguousarray(design[order], dtype=np.float64))
    t = torch.from_numpy(np.asarray(target, dtype=np.float64)[order])
    sizes = np.bincount(group, minlength=num_groups).tolist()
    # One small X_g^T [X_g, t_g] product per group, rows contiguous after the sort.
    blocks = [part.T @ part for part in torch.split(torch.cat([x, t[:, None]], 1), sizes)]
    stacked = torch.stack(blocks)  # [G, P + 1, P + 1]
    width = x.shape[1]
    gram = stacked[:, :width, :width] + torch.diag(torch.as_tensor(precision,
                                                                    dtype=torch.float64))
    return torch.linalg.solve(gram, stacked[:, :width, width]).numpy()


class BiasedMFALS:
    """Biased matrix factorisation ``r_hat(u, i) = mu + b_u + b_i + p_u . q_i``, fitted by
    alternating least squares, each evaluated user folded in from their support set.

    ``mu`` is the mean training rating; item factors start at ``N(0, 0.1^2)`` (seeded).
    Each of ``sweeps`` rounds solves every user's ``(b_u, p_u)`` given the items, then
    every item's ``(b_i, q_i)`` given the users, as ridge regressions on their training
    ratings: ``min sum (r - mu - b_u - b_i - p_u . q_i)^2 + reg_bias b^2 + reg |f|^2``
    (the bias shrunk like :class:`Biases`', the factors by ``reg``). At test time a user's
    bias and factors are solved the same way from their support ratings alone, the trained
    items fixed (folding in, as LensKit's ``BiasedMF`` does for a user it was not trained
    on): the support is all that is known about the user. An item unseen in training has
    ``b_i = 0, q_i = 0``; a user with no support rating ``b_u = 0, p_u = 0``.
    """

    def __init__(self, factors: int = 32, reg: float = 10.0, reg_bias: float = 10.0,
                 sweeps: int = 10, seed: int = 0) -> None:
        self.factors = factors
        self.reg = reg
        self.reg_bias = reg_bias
        self.sweeps = sweeps
        self.seed = seed

    def _precision(self) -> np.ndarray:
        return np.array([self.reg_bias] + [self.reg] * self.factors)

    def fit(self, train: Interactions, num_users: int, num_items: int) -> BiasedMFALS:
        _check_train(train, num_users, num_items)
        if self.sweeps < 1 or self.factors < 1:
            raise ValueError(f"sweeps and factors must be at least 1, got {self.sweeps}, "
                             f"{self.factors}")
        rating = train.rating.astype(np.float64)
        mu = float(rating.mean())
        rng = np.random.default_rng(self.seed)
        item = np.concatenate([np.zeros((num_items, 1)),
                               rng.normal(0.0, 0.1, (num_items, self.factors))], axis=1)
        for _ in range(self.sweeps):
            rows = item[train.item]
            user = self._solve_side(train.user, rows, rating - mu - rows[:, 0], num_users)
            rows = user[train.user]
            item = self._solve_side(train.item, rows, rating - mu - rows[:, 0], num_items)
        self.global_mean_ = mu
        self.user_ = user  # [num_users, 1 + factors]: bias, factors
        self.item_ = item
        return self

    def _solve_side(self, group: np.ndarray, other: np.ndarray, target: np.ndarray,
                    size: int) -> np.ndarray:
        """Every entity's (bias, factors) given the other side's rows ``other``."""
        design = np.concatenate([np.ones((len(other), 1)), other[:, 1:]], axis=1)
        return _grouped_ridge(group, design, target, size, self._precision())

    def _fold_in(self, support: Interactions, task_of_row: np.ndarray,
                 num_tasks: int) -> np.ndarray:
        item = _lookup(self.item_, support.item)
        target = support.rating.astype(np.float64) - self.global_mean_ - item[:, 0]
        return self._solve_side(task_of_row, item, target, num_tasks)

    def _score(self, user: np.ndarray, task_of_row: np.ndarray, items: np.ndarray,
               chunk: int = 65536) -> np.ndarray:
        """Scores of ``items`` for the users ``user[task_of_row]``, in chunks of rows (a
        ranking over the whole catalogue has millions)."""
        out = np.empty(len(items))
        for start in range(0, len(items), chunk):
            rows = slice(start, start + chunk)
            u, i = user[task_of_row[rows]], _lookup(self.item_, items[rows])
            out[rows] = self.global_mean_ + u[:, 0] + i[:, 0] + (u[:, 1:] * i[:, 1:]).sum(1)
        return out

    def predict_tasks(self, tasks: TaskSet) -> np.ndarray:
        _require_fitted(self, "item_")
        user = self._fold_in(tasks.support, _task_of_rows(tasks.support_offsets), len(tasks))
        return self._score(user, _task_of_rows(tasks.query_offsets), tasks.query.item)

    def score_items(self, user_support: Interactions, items: np.ndarray) -> np.ndarray:
        _require_fitted(self, "item_")
        user = self._fold_in(user_support, np.zeros(len(user_support), np.int64), 1)
        return self._score(user, np.zeros(len(items), np.int64), np.asarray(items))


MF_REGS = (1.0, 3.0, 10.0, 30.0, 100.0)
"""The factor precisions :func:`tuned_mf` chooses from."""


def tuned_mf(train: Interactions, num_users: int, num_items: int,
             validation: TaskSet | None, loss: str = "mse",
             regs: Sequence[float] = MF_REGS, **options: object) -> BiasedMFALS:
    """The :class:`BiasedMFALS` (``options`` as its constructor's) whose factor precision,
    one of ``regs``, gives the least validation ``loss`` (``"mse"`` or ``"mae"`` of the
    query ratings, users folded in from their supports); ``regs[0]``'s without validation
    tasks."""
    def fitted(reg: float) -> BiasedMFALS:
        return BiasedMFALS(reg=reg, **options).fit(train, num_users, num_items)  # type: ignore[arg-type]

    if validation is None or not len(validation):
        return fitted(regs[0])
    power = {"mse": 2, "mae": 1}[loss]

    def error(model: BiasedMFALS) -> float:
        residual = model.predict_tasks(validation) - validation.query.rating
        return float(np.mean(np.abs(residual) ** power))

    return min((fitted(r) for r in regs), key=error)
