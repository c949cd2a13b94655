"""Non-learned and bias baselines, all with one small surface.

Construct with hyper-parameters (stored as given), ``fit(train, num_users, num_items)``
(learned state ends in ``_``), then either ``predict_tasks(tasks)``: one prediction per
query row of a :class:`~metarec.tasks.TaskSet`, using each task's support rows as all that
is known about its user at test time, or ``score_items(user_support, items)``: scores of one
user (known by their support ratings) over candidate items, for ranking. Items never seen
in training fall back to the global mean (zero bias).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from metarec.data.dataset import Interactions
from metarec.errors import DataError
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


def _shrunk_mean(keys: np.ndarray, values: np.ndarray, size: int, reg: float) -> np.ndarray:
    """``sum_{rows of key} value / (count of key + reg)`` for each key in 0..size-1 (0 for a
    key with no rows)."""
    sums = np.bincount(keys, weights=values, minlength=size)
    denominators = np.bincount(keys, minlength=size) + reg
    return np.divide(sums, denominators, out=np.zeros(size), where=denominators > 0)


def _lookup(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]``, 0 for indices outside the fitted range (unseen entities)."""
    index = np.asarray(index, dtype=np.int64)
    inside = (index >= 0) & (index < len(values))
    return np.where(inside, values[np.where(inside, index, 0)] if len(values) else 0.0, 0.0)


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
        if self.passes < 1:
            raise ValueError(f"passes must be at least 1, got {self.passes}")
        rating = train.rating.astype(np.float64)
        mu = float(rating.mean())
        user_bias = np.zeros(num_users)
        item_bias = np.zeros(num_items)
        for _ in range(self.passes):
            item_bias = _shrunk_mean(train.item, rating - mu - user_bias[train.user],
                                     num_items, self.reg_item)
            user_bias = _shrunk_mean(train.user, rating - mu - item_bias[train.item],
                                     num_users, self.reg_user)
        self.global_mean_ = mu
        self.user_bias_ = user_bias
        self.item_bias_ = item_bias
        return self

    def _support_bias(self, support: Interactions, task_of_row: np.ndarray,
                      num_tasks: int) -> np.ndarray:
        residual = (support.rating.astype(np.float64) - self.global_mean_
                    - _lookup(self.item_bias_, support.item))
        return _shrunk_mean(task_of_row, residual, num_tasks, self.reg_user)

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
        self.item_mean_ = mu + _shrunk_mean(train.item, rating - mu, num_items, self.reg_item)
        self.item_count_ = np.bincount(train.item, minlength=num_items)
        return self

    def predict_tasks(self, tasks: TaskSet) -> np.ndarray:
        _require_fitted(self, "item_mean_")
        return self.global_mean_ + _lookup(self.item_mean_ - self.global_mean_,
                                           tasks.query.item)

    def score_items(self, user_support: Interactions, items: np.ndarray) -> np.ndarray:
        _require_fitted(self, "item_count_")
        return _lookup(self.item_count_.astype(np.float64), items)
