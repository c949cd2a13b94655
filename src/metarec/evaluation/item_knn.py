"""Item-item k-nearest-neighbours collaborative filtering (LensKit's ``ItemItem``), on the
residuals of damped biases, with the baselines' surface (see
:mod:`metarec.evaluation.baselines`).

Fit: :class:`~metarec.evaluation.baselines.Biases` on the training ratings; every rating's
residual ``e_ui = r_ui - mu - b_u - b_i``; the similarity of items ``i`` and ``j`` is the
cosine of their residual columns, shrunk by the number ``n_ij`` of users who rated both
(Koren, 2008):

    s_ij = (sum_u e_ui e_uj) / (||e_i|| ||e_j||) * n_ij / (n_ij + shrink)

Predict ``(u, j)`` from what the user's support says: the user bias ``b_u`` from the
support (as :class:`Biases`), then the ``neighbours`` support items most similar to ``j``
with a positive similarity, their residuals averaged with the similarities as weights:

    r_hat(u, j) = mu + b_u + b_j + sum_{i in N(u, j)} s_ij e_ui / sum_{i in N(u, j)} s_ij

A film that training never saw, or with no positive neighbour in the support, is scored
``mu + b_u + b_j`` (its bias 0 when new).
"""

from __future__ import annotations

import numpy as np

from metarec.data.dataset import Interactions
from metarec.evaluation.baselines import Biases, _lookup, _require_fitted, _task_of_rows
from metarec.models.item_similarity import residual_similarity
from metarec.tasks.taskset import TaskSet


class ItemKNN:
    """Item-item kNN on bias residuals (see the module text): ``neighbours`` per
    prediction (LensKit's default 20), similarities shrunk by ``shrink`` co-raters, the
    biases damped by ``reg_user`` / ``reg_item`` and fitted in ``passes`` as
    :class:`Biases`'; the similarities summed over ``chunk`` users at a time (by default
    as many as make 16M user x item cells)."""

    def __init__(self, neighbours: int = 20, shrink: float = 100.0, reg_user: float = 15.0,
                 reg_item: float = 10.0, passes: int = 10, chunk: int | None = None) -> None:
        if neighbours < 1 or shrink < 0:
            raise ValueError(f"neighbours must be at least 1 and shrink at least 0, got "
                             f"{neighbours}, {shrink}")
        self.neighbours = neighbours
        self.shrink = shrink
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.passes = passes
        self.chunk = chunk

    def fit(self, train: Interactions, num_users: int, num_items: int) -> ItemKNN:
        biases = Biases(self.reg_user, self.reg_item, self.passes).fit(train, num_users, num_items)
        residual = (train.rating.astype(np.float64) - biases.global_mean_
                    - biases.user_bias_[train.user] - biases.item_bias_[train.item])
        similarity = residual_similarity(train.user, train.item, residual, num_users,
                                         num_items, self.shrink, self.chunk)
        self.biases_ = biases
        self.similarity_ = similarity
        return self

    def _support(self, support: Interactions, task_of_row: np.ndarray,
                 num_tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each task's user bias and its support items and residuals, padded to the
        longest support (item -1, residual 0)."""
        biases = self.biases_
        user_bias = biases._support_bias(support, task_of_row, num_tasks)
        residual = (support.rating.astype(np.float64) - biases.global_mean_
                    - user_bias[task_of_row] - _lookup(biases.item_bias_, support.item))
        sizes = np.bincount(task_of_row, minlength=num_tasks)
        width = int(sizes.max()) if len(sizes) else 0
        position = np.arange(len(task_of_row)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        items = np.full((num_tasks, width), -1, dtype=np.int64)
        residuals = np.zeros((num_tasks, width))
        items[task_of_row, position] = support.item
        residuals[task_of_row, position] = residual
        return user_bias, items, residuals

    def _score(self, user_bias: np.ndarray, items: np.ndarray, residuals: np.ndarray,
               task_of_row: np.ndarray, targets: np.ndarray, chunk: int = 8192) -> np.ndarray:
        biases, known = self.biases_, len(self.similarity_)
        out = np.empty(len(targets))
        for start in range(0, len(targets), chunk):
            rows = slice(start, start + chunk)
            target, task = np.asarray(targets[rows], dtype=np.int64), task_of_row[rows]
            neighbour, value = items[task], residuals[task]
            inside = (neighbour >= 0) & (neighbour < known) & (
                (target >= 0) & (target < known))[:, None]
            sim = np.where(inside, self.similarity_[np.where(inside, target[:, None], 0),
                                                     np.where(inside, neighbour, 0)], 0.0)
            sim = np.maximum(sim, 0.0)
            if sim.shape[1] > self.neighbours:
                top = np.argpartition(-sim, self.neighbours - 1, axis=1)[:, :self.neighbours]
                sim = np.take_along_axis(sim, top, axis=1)
                value = np.take_along_axis(value, top, axis=1)
            weight = sim.sum(axis=1)
            offset = np.divide((sim * value).sum(axis=1), weight,
                               out=np.zeros(len(weight)), where=weight > 0)
            out[rows] = (biases.global_mean_ + user_bias[task]
                         + _lookup(biases.item_bias_, target) + offset)
        return out

    def predict_tasks(self, tasks: TaskSet) -> np.ndarray:
        _require_fitted(self, "similarity_")
        support = self._support(tasks.support, _task_of_rows(tasks.support_offsets),
                                len(tasks))
        return self._score(*support, _task_of_rows(tasks.query_offsets), tasks.query.item)

    def score_items(self, user_support: Interactions, items: np.ndarray) -> np.ndarray:
        _require_fitted(self, "similarity_")
        support = self._support(user_support, np.zeros(len(user_support), np.int64), 1)
        return self._score(*support, np.zeros(len(items), np.int64), np.asarray(items))
