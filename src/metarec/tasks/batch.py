"""Padding tasks into one batch of tensors ready for ``torch.func.vmap``.

This is the one place where tasks are padded: everything downstream takes a
:class:`TaskBatch` and never re-pads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from metarec.data.dataset import FeatureTable, Fields
from metarec.tasks.taskset import TaskSet


@dataclass
class TaskBatch:
    """A meta-batch of B tasks padded to S support and Q query rows.

    ``user_fields`` are ``[B, ...]``; ``support_fields`` ``[B, S, ...]``;
    ``support_ratings`` float ``[B, S]``; ``support_mask`` bool ``[B, S]`` (False = padding);
    the same for the query. Padding rows repeat a real row of their task with mask False,
    so they are valid model inputs that contribute nothing.
    """

    users: torch.Tensor
    user_fields: Fields
    support_fields: Fields
    support_ratings: torch.Tensor
    support_mask: torch.Tensor
    query_fields: Fields
    query_ratings: torch.Tensor
    query_mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def support_items(self) -> torch.Tensor:
        return self.support_fields["id"]

    @property
    def query_items(self) -> torch.Tensor:
        return self.query_fields["id"]

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> TaskBatch:
        """Move every tensor to ``device``; cast float tensors to ``dtype``."""
        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            return t.to(device) if device is not None else t

        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            changes[f.name] = ({k: move(v) for k, v in value.items()} if isinstance(value, dict)
                               else move(value))
        return replace(self, **changes)

    def select(self, index: slice | torch.Tensor) -> TaskBatch:
        """Tasks ``index`` of this batch (padding kept as is)."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            changes[f.name] = ({k: v[index] for k, v in value.items()} if isinstance(value, dict)
                               else value[index])
        return replace(self, **changes)


def pad_tasks(tasks: TaskSet, index: np.ndarray, users: FeatureTable,
              items: FeatureTable) -> TaskBatch:
    """Pad tasks ``index`` of ``tasks`` into one :class:`TaskBatch` (vectorised)."""
    index = np.asarray(index, dtype=np.int64)
    user_idx = torch.from_numpy(tasks.users[index])
    s_rows, s_mask = _padded_rows(tasks.support_offsets, index)
    q_rows, q_mask = _padded_rows(tasks.query_offsets, index)
    s_items, s_ratings = _gather(tasks.support.item, tasks.support.rating, s_rows)
    q_items, q_ratings = _gather(tasks.query.item, tasks.query.rating, q_rows)
    return TaskBatch(
        users=user_idx,
        user_fields=users.take(user_idx),
        support_fields=items.take(torch.from_numpy(s_items)),
        support_ratings=torch.from_numpy(s_ratings * s_mask),
        support_mask=torch.from_numpy(s_mask),
        query_fields=items.take(torch.from_numpy(q_items)),
        query_ratings=torch.from_numpy(q_ratings * q_mask),
        query_mask=torch.from_numpy(q_mask),
    )


def _gather(item: np.ndarray, rating: np.ndarray, rows: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Items and ratings at ``rows``; with no rows at all (every task empty), padding
    points at item 0 with rating 0, which the mask hides."""
    if len(item) == 0:
        return np.zeros(rows.shape, np.int64), np.zeros(rows.shape, np.float32)
    return item[rows], rating[rows]


def _padded_rows(offsets: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, sizes = offsets[index], offsets[index + 1] - offsets[index]
    width = max(int(sizes.max(initial=0)), 1)
    position = np.arange(width)[None, :]
    mask = position < sizes[:, None]
    # Padding points at the task's first row (or row 0 for an empty task): a valid input.
    rows = np.where(mask, starts[:, None] + position, np.where(sizes > 0, starts, 0)[:, None])
    if offsets[-1] == 0:
        rows = np.zeros_like(rows)
    return rows.astype(np.int64), mask


class TaskBatcher:
    """Seeded iterator over meta-batches of a :class:`TaskSet`.

    Each epoch visits every task once in an order drawn from ``seed`` and the epoch
    number, so iteration is reproducible and resumable from ``(epoch, position)``.
    With ``bucket = b > 1`` the shuffled tasks are cut into pools of ``b`` meta-batches,
    each pool sorted by support size before it is cut into meta-batches, and the batches
    shuffled again: tasks of similar size share a batch, so padding (wasted compute)
    shrinks while every batch stays a random draw from its pool.
    """

    def __init__(self, tasks: TaskSet, users: FeatureTable, items: FeatureTable,
                 meta_batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, bucket: int = 1) -> None:
        if meta_batch_size < 1 or bucket < 1:
            raise ValueError("meta_batch_size and bucket must be >= 1")
        self.tasks, self.users, self.items = tasks, users, items
        self.meta_batch_size, self.seed, self.shuffle = meta_batch_size, seed, shuffle
        self.drop_last, self.bucket = drop_last, bucket
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        full, rest = divmod(len(self.tasks), self.meta_batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def batches(self, epoch: int) -> list[np.ndarray]:
        """Task indices of every meta-batch of ``epoch``, in order."""
        size = self.meta_batch_size
        rng = np.random.default_rng([self.seed, epoch])
        if not self.shuffle:
            order = np.arange(len(self.tasks))
        else:
            order = rng.permutation(len(self.tasks))
        if self.shuffle and self.bucket > 1:
            sizes = self.tasks.support_sizes
            pool = size * self.bucket
            order = np.concatenate([
                chunk[np.argsort(sizes[chunk], kind="stable")]
                for chunk in np.split(order, range(pool, len(order), pool))] or [order])
        batches = [order[i:i + size] for i in range(0, len(order), size)][: len(self)]
        if self.shuffle and self.bucket > 1:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def batch_indices(self) -> Iterator[np.ndarray]:
        """Task indices of the remaining meta-batches of the current epoch; advances state."""
        batches = self.batches(self.epoch)
        while self.position < len(self):
            self.position += 1
            yield batches[self.position - 1]
        self.epoch, self.position = self.epoch + 1, 0

    def __iter__(self) -> Iterator[TaskBatch]:
        for index in self.batch_indices():
            yield pad_tasks(self.tasks, index, self.users, self.items)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self.seed = state["epoch"], state["position"], state["seed"]
