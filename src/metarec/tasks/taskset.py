"""A set of per-user tasks stored flat, in CSR form: no Python object per task."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metarec.data.dataset import Interactions


@dataclass
class TaskSet:
    """Tasks of one scenario. Task ``t`` belongs to user ``users[t]``; its support rows are
    ``support[support_offsets[t]:support_offsets[t + 1]]`` and likewise for the query.
    Rows keep time order within a task where the data had timestamps."""

    users: np.ndarray
    support: Interactions
    support_offsets: np.ndarray
    query: Interactions
    query_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @property
    def support_sizes(self) -> np.ndarray:
        return np.diff(self.support_offsets)

    @property
    def query_sizes(self) -> np.ndarray:
        return np.diff(self.query_offsets)

    @staticmethod
    def from_rows(support: Interactions, query: Interactions) -> TaskSet:
        """Group support and query rows by user into tasks (users present in both)."""
        users = np.intersect1d(np.unique(support.user), np.unique(query.user))
        support = support.subset(np.isin(support.user, users))
        query = query.subset(np.isin(query.user, users))
        support, support_offsets = _group(support, users)
        query, query_offsets = _group(query, users)
        return TaskSet(users, support, support_offsets, query, query_offsets)

    @staticmethod
    def concat(parts: list[TaskSet]) -> TaskSet:
        """The tasks of ``parts`` one after the other (a user may own several tasks)."""
        support = _concat_all([p.support for p in parts])
        query = _concat_all([p.query for p in parts])
        return TaskSet(np.concatenate([p.users for p in parts]), support,
                       _joined_offsets([p.support_sizes for p in parts]), query,
                       _joined_offsets([p.query_sizes for p in parts]))

    def select(self, tasks: np.ndarray) -> TaskSet:
        """The tasks at positions ``tasks`` (a bool mask or index array), in that order."""
        tasks = np.flatnonzero(tasks) if tasks.dtype == bool else np.asarray(tasks)
        support_rows, support_offsets = _rows_of(self.support_offsets, tasks)
        query_rows, query_offsets = _rows_of(self.query_offsets, tasks)
        return TaskSet(self.users[tasks], self.support.subset(support_rows), support_offsets,
                       self.query.subset(query_rows), query_offsets)

    def query_rows(self, tasks: np.ndarray) -> np.ndarray:
        """Positions in :attr:`query` of the query rows of tasks ``tasks`` (an index
        array), in the order of :meth:`select`'s query."""
        return _rows_of(self.query_offsets, np.asarray(tasks, dtype=np.int64))[0]

    def cap_support(self, k: int, seed: int) -> TaskSet:
        """Keep at most ``k`` support ratings per task, drawn at random (k-shot)."""
        rng = np.random.default_rng(seed)
        sizes = self.support_sizes
        keep = np.zeros(len(self.support), dtype=bool)
        for t in np.flatnonzero(sizes > 0):
            start = self.support_offsets[t]
            chosen = rng.choice(sizes[t], size=min(k, sizes[t]), replace=False)
            keep[start + np.sort(chosen)] = True
        support = self.support.subset(keep)
        offsets = np.concatenate([[0], np.cumsum(np.minimum(sizes, k))]).astype(np.int64)
        return TaskSet(self.users, support, offsets, self.query, self.query_offsets)

    def redraw_query(self, seed: int | list[int]) -> TaskSet:
        """The same tasks with each query drawn again at random from the task's rows
        (support and query together), keeping every task's query size. Meta-training on
        a fresh draw each epoch lets every training rating serve as a query target."""
        rng = np.random.default_rng(seed)
        rows = _concat_all([self.support, self.query])
        task = np.concatenate([np.repeat(np.arange(len(self)), self.support_sizes),
                               np.repeat(np.arange(len(self)), self.query_sizes)])
        sizes = self.support_sizes + self.query_sizes
        starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
        shuffled = np.lexsort((rng.random(len(rows)), task))
        rank = np.arange(len(rows)) - starts[task[shuffled]]
        is_query = np.empty(len(rows), dtype=bool)
        is_query[shuffled] = rank < self.query_sizes[task[shuffled]]
        # Each task's rows keep their relative order (former support rows first).
        grouped = np.argsort(task, kind="stable")
        support, query = grouped[~is_query[grouped]], grouped[is_query[grouped]]
        return TaskSet(self.users, rows.subset(support),
                       _joined_offsets([self.support_sizes]), rows.subset(query),
                       self.query_offsets.copy())

    def with_history(self, history: Interactions) -> TaskSet:
        """The same tasks with each support set extended by its user's ``history`` rows
        (what is already known about the user, e.g. their training ratings), leaving out
        every item the task already has in its support or query; queries are unchanged.
        Each support keeps time order (rows without a timestamp last). Needs one task per
        user."""
        rows, task_of_row = self._history_rows(history)
        return self._with_support(_concat_all([self.support, rows]), np.concatenate(
            [np.repeat(np.arange(len(self)), self.support_sizes), task_of_row]))

    def history_tasks(self, history: Interactions, *, skip_query: bool = True) -> TaskSet:
        """The same tasks (users and queries) with each support set replaced by the rows
        :meth:`with_history` would add to it: the user's ``history`` rows of items the
        task has in neither its support nor (with ``skip_query``) its query, in time
        order (possibly none). Without ``skip_query`` a query item keeps its history row
        (when the query holds candidates to score, not ratings to hide)."""
        return self._with_support(*self._history_rows(history, skip_query=skip_query))

    def _history_rows(self, history: Interactions, *, skip_query: bool = True
                      ) -> tuple[Interactions, np.ndarray]:
        """The rows of ``history`` that :meth:`with_history` adds, and the task of each."""
        if len(np.unique(self.users)) != len(self.users):
            raise ValueError("with_history needs one task per user")
        order = np.argsort(self.users, kind="stable")
        position = np.searchsorted(self.users, history.user, sorter=order)
        known = position < len(self.users)
        task = np.full(len(history), -1, dtype=np.int64)
        task[known] = order[position[known]]
        known[known] = self.users[task[known]] == history.user[known]
        width = int(max(history.item.max(initial=-1), self.support.item.max(initial=-1),
                        self.query.item.max(initial=-1))) + 1
        taken = np.repeat(np.arange(len(self)), self.support_sizes) * width + self.support.item
        if skip_query:
            taken = np.concatenate([taken, np.repeat(np.arange(len(self)), self.query_sizes)
                                    * width + self.query.item])
        key = np.where(known, task * width + history.item, -1)
        added = known & ~np.isin(key, taken)
        first = np.zeros(len(history), dtype=bool)  # a rating the history repeats, once
        first[np.unique(key, return_index=True)[1]] = True
        added &= first
        return history.subset(added), task[added]

    def _with_support(self, rows: Interactions, task_of_row: np.ndarray) -> TaskSet:
        """These tasks with support ``rows`` (task ``task_of_row`` each), in time order."""
        grouped = np.lexsort((np.nan_to_num(rows.timestamp, nan=np.inf), task_of_row))
        sizes = np.bincount(task_of_row, minlength=len(self))
        return TaskSet(self.users, rows.subset(grouped), _joined_offsets([sizes]),
                       self.query, self.query_offsets.copy())

    def all_ratings(self) -> Interactions:
        """Support and query rows together (what plain training may learn from)."""
        return _concat_all([self.support, self.query])


def _group(rows: Interactions, users: np.ndarray) -> tuple[Interactions, np.ndarray]:
    task_of_row = np.searchsorted(users, rows.user)
    order = np.argsort(task_of_row, kind="stable")
    counts = np.bincount(task_of_row, minlength=len(users))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return rows.subset(order), offsets


def _rows_of(offsets: np.ndarray, tasks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sizes = offsets[tasks + 1] - offsets[tasks]
    new_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rows = np.repeat(offsets[tasks] - new_offsets[:-1], sizes) + np.arange(new_offsets[-1])
    return rows.astype(np.int64), new_offsets


def _concat_all(parts: list[Interactions]) -> Interactions:
    return Interactions(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("user", "item", "rating", "timestamp")))


def _joined_offsets(sizes: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.concatenate(sizes))]).astype(np.int64)
