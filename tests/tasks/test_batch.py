"""TaskSet (CSR tasks), pad_tasks and TaskBatcher on hand-made tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.data.dataset import FeatureTable, FieldSpec, Interactions
from metarec.tasks import TaskBatcher, TaskSet
from metarec.tasks.batch import pad_tasks


def _rows(user, item, rating, timestamp=None) -> Interactions:
    n = len(user)
    ts = np.full(n, np.nan) if timestamp is None else np.asarray(timestamp, dtype=float)
    return Interactions(np.asarray(user, dtype=np.int64), np.asarray(item, dtype=np.int64),
                        np.asarray(rating, dtype=np.float32), ts)


@pytest.fixture
def tasks() -> TaskSet:
    """Users 5, 6, 7 with support sizes 2, 0, 3 and query sizes 1, 2, 1."""
    support = _rows([5, 5, 7, 7, 7], [10, 11, 12, 13, 14], [1, 2, 3, 4, 5])
    query = _rows([5, 6, 6, 7], [15, 16, 17, 18], [5, 4, 3, 2])
    return TaskSet(np.array([5, 6, 7]), support, np.array([0, 2, 2, 5]), query,
                   np.array([0, 1, 3, 4]))


@pytest.fixture
def tables() -> tuple[FeatureTable, FeatureTable]:
    users = FeatureTable([FieldSpec("g", "categorical", ("a", "b"))],
                         {"g": torch.tensor([0, 1, 2, 1, 2, 1, 2, 1, 0, 1, 2, 1])}, 12)
    items = FeatureTable([FieldSpec("year", "numeric")],
                         {"year": torch.arange(20, dtype=torch.float32) + 1990}, 20)
    return users, items


def test_pad_tasks_exact_tensors(tasks: TaskSet, tables) -> None:
    users, items = tables
    batch = pad_tasks(tasks, np.array([0, 1, 2]), users, items)
    assert len(batch) == 3
    assert batch.users.tolist() == [5, 6, 7]
    assert batch.user_fields["g"].tolist() == [1, 2, 1]
    assert batch.support_mask.tolist() == [[True, True, False], [False, False, False],
                                           [True, True, True]]
    # Padding repeats the task's first row; an empty task points at row 0 (a real row).
    assert batch.support_items.tolist() == [[10, 11, 10], [10, 10, 10], [12, 13, 14]]
    assert batch.support_fields["year"].tolist() == [[2000, 2001, 2000], [2000] * 3,
                                                     [2002, 2003, 2004]]
    assert batch.support_ratings.tolist() == [[1, 2, 0], [0, 0, 0], [3, 4, 5]]
    assert batch.support_ratings.dtype == torch.float32
    assert batch.query_mask.tolist() == [[True, False], [True, True], [True, False]]
    assert batch.query_items.tolist() == [[15, 15], [16, 17], [18, 18]]
    assert batch.query_ratings.tolist() == [[5, 0], [4, 3], [2, 0]]


def test_pad_tasks_subset_and_order(tasks: TaskSet, tables) -> None:
    batch = pad_tasks(tasks, np.array([2, 0]), *tables)
    assert batch.users.tolist() == [7, 5]
    assert batch.support_items.tolist() == [[12, 13, 14], [10, 11, 10]]
    only_empty = pad_tasks(tasks, np.array([1]), *tables)
    assert only_empty.support_mask.shape == (1, 1) and not only_empty.support_mask.any()


def test_pad_tasks_all_empty_support(tables) -> None:
    empty = _rows([], [], [])
    tasks = TaskSet(np.array([1, 2]), empty, np.array([0, 0, 0]),
                    _rows([1, 2], [3, 4], [5, 1]), np.array([0, 1, 2]))
    batch = pad_tasks(tasks, np.array([0, 1]), *tables)
    assert batch.support_mask.tolist() == [[False], [False]]
    assert batch.query_items.tolist() == [[3], [4]]


def test_task_batch_select_and_to(tasks: TaskSet, tables) -> None:
    batch = pad_tasks(tasks, np.array([0, 1, 2]), *tables)
    part = batch.select(slice(1, 3))
    assert part.users.tolist() == [6, 7]
    assert part.support_fields["year"].shape == (2, 3)
    double = batch.to(dtype=torch.float64)
    assert double.support_ratings.dtype == torch.float64
    assert double.support_items.dtype == torch.int64
    assert double.support_mask.dtype == torch.bool


def test_taskset_select_by_index_and_mask(tasks: TaskSet) -> None:
    picked = tasks.select(np.array([2, 0]))
    assert picked.users.tolist() == [7, 5]
    assert picked.support_offsets.tolist() == [0, 3, 5]
    assert picked.support.item.tolist() == [12, 13, 14, 10, 11]
    assert picked.query_offsets.tolist() == [0, 1, 2]
    assert picked.query.item.tolist() == [18, 15]
    masked = tasks.select(np.array([False, True, True]))
    assert masked.users.tolist() == [6, 7]
    assert masked.support_sizes.tolist() == [0, 3]
    assert masked.query.item.tolist() == [16, 17, 18]


def test_taskset_from_rows_groups_by_user_keeping_row_order() -> None:
    support = _rows([3, 1, 3, 9, 1], [30, 10, 31, 90, 11], [1, 2, 3, 4, 5])
    query = _rows([1, 3, 4], [12, 32, 40], [5, 5, 5])
    tasks = TaskSet.from_rows(support, query)
    # User 9 has no query and user 4 no support: neither forms a task.
    assert tasks.users.tolist() == [1, 3]
    assert tasks.support.item.tolist() == [10, 11, 30, 31]
    assert tasks.support_offsets.tolist() == [0, 2, 4]
    assert tasks.query.item.tolist() == [12, 32]
    assert tasks.query_offsets.tolist() == [0, 1, 2]
    assert len(tasks.all_ratings()) == 6


def _history_example() -> tuple[Interactions, TaskSet, Interactions]:
    support = _rows([5, 5], [10, 11], [1, 2], [2, 4])
    query = _rows([5, 6], [15, 16], [5, 4], [9, 9])
    tasks = TaskSet(np.array([6, 5]), support,
                    np.array([0, 0, 2]), query.subset(np.array([1, 0])), np.array([0, 1, 2]))
    history = _rows([4, 5, 9, 5, 5, 6, 5, 5], [12, 11, 30, 15, 12, 20, 13, 12],
                    [3, 3, 3, 1, 4, 2, 5, 1], [0, 4, 1, 5, 3, 1, np.nan, 8])
    return support, tasks, history


def test_with_history_adds_the_users_other_ratings_in_time_order() -> None:
    """Task of user 5 (support items 10, 11 at t=2, 4; query item 15) and user 6 (no
    support, query 16). History: user 5's items 11 (already in the support), 15 (the
    query item), 12 at t=3, 13 without a time and 12 again; user 6's item 20 at t=1;
    users 4 and 9, who have no task, items 12 and 30."""
    support, tasks, history = _history_example()
    extended = tasks.with_history(history)
    assert extended.users.tolist() == [6, 5]
    assert extended.support_offsets.tolist() == [0, 1, 5]
    assert extended.support.user.tolist() == [6, 5, 5, 5, 5]
    # Item 12 once (its first row, t=3), in time order; item 13 (no time) last.
    assert extended.support.item.tolist() == [20, 10, 12, 11, 13]
    assert extended.support.rating.tolist() == [2, 1, 4, 2, 5]
    assert extended.query.item.tolist() == [16, 15]
    assert extended.query_offsets.tolist() == [0, 1, 2]
    assert support.item.tolist() == [10, 11]  # the input is untouched
    with pytest.raises(ValueError, match="one task per user"):
        TaskSet.concat([tasks, tasks]).with_history(history)


def test_history_tasks_hold_only_the_rows_with_history_adds() -> None:
    """The tasks of the last test: user 6's support is item 20, user 5's items 12 (t=3)
    and 13 (no time), neither of the support items 10, 11; queries unchanged."""
    _, tasks, history = _history_example()
    memory = tasks.history_tasks(history)
    assert memory.users.tolist() == [6, 5]
    assert memory.support_offsets.tolist() == [0, 1, 3]
    assert memory.support.item.tolist() == [20, 12, 13]
    assert memory.support.rating.tolist() == [2, 4, 5]
    assert memory.query.item.tolist() == [16, 15]
    # Keeping query items (candidates to score): user 5's item 15 (t=5) joins.
    scoring = tasks.history_tasks(history, skip_query=False)
    assert scoring.support.item.tolist() == [20, 12, 15, 13]
    assert tasks.query_rows(np.array([1])).tolist() == [1]
    assert tasks.query_rows(np.array([1, 0])).tolist() == [1, 0]
    none = tasks.history_tasks(history.subset(history.user == 9))
    assert none.support_offsets.tolist() == [0, 0, 0] and len(none.support) == 0


def _task_rows(tasks: TaskSet, part: str, t: int) -> set:
    offsets, data = getattr(tasks, f"{part}_offsets"), getattr(tasks, part)
    return {(int(data.user[i]), int(data.item[i]), float(data.rating[i]))
            for i in range(offsets[t], offsets[t + 1])}


def test_redraw_query_keeps_each_tasks_rows_and_sizes(tasks: TaskSet) -> None:
    seen = set()
    for seed in range(20):
        redrawn = tasks.redraw_query(seed)
        assert redrawn.users.tolist() == tasks.users.tolist()
        assert redrawn.support_sizes.tolist() == tasks.support_sizes.tolist()
        assert redrawn.query_sizes.tolist() == tasks.query_sizes.tolist()
        for t in range(len(tasks)):
            before = _task_rows(tasks, "support", t) | _task_rows(tasks, "query", t)
            support, query = _task_rows(redrawn, "support", t), _task_rows(redrawn, "query", t)
            assert support | query == before and not support & query
        seen.add(tuple(redrawn.query.item.tolist()))
    # Task 0 has 3 rows and a 1-row query, task 2 has 4 rows, 1 query: 3 * 4 = 12 draws;
    # twenty seeds see several of them, and one seed always the same one.
    assert len(seen) > 3
    assert tasks.redraw_query(7).query.item.tolist() == tasks.redraw_query(7).query.item.tolist()


def _many_tasks(n: int = 10) -> TaskSet:
    users = np.repeat(np.arange(n), 3)
    return TaskSet.from_rows(_rows(users, users % 20, np.ones(3 * n)),
                             _rows(np.arange(n), np.arange(n) % 20, np.ones(n)))


def test_batcher_visits_every_task_once_per_epoch(tables) -> None:
    batcher = TaskBatcher(_many_tasks(), *tables, meta_batch_size=3, seed=1)
    assert len(batcher) == 4
    for epoch in range(2):
        batches = list(batcher.batch_indices())
        assert [len(b) for b in batches] == [3, 3, 3, 1]
        assert sorted(np.concatenate(batches).tolist()) == list(range(10))
        assert batcher.epoch == epoch + 1 and batcher.position == 0
    dropped = TaskBatcher(_many_tasks(), *tables, meta_batch_size=3, drop_last=True)
    assert len(dropped) == 3 and len(list(dropped.batch_indices())) == 3


def test_batcher_deterministic_per_seed(tables) -> None:
    def run(seed: int) -> list[list[int]]:
        batcher = TaskBatcher(_many_tasks(), *tables, meta_batch_size=4, seed=seed)
        return [b.tolist() for _ in range(2) for b in batcher.batch_indices()]

    assert run(5) == run(5)
    assert run(5) != run(6)
    first, second = run(5)[:3], run(5)[3:]
    assert first != second, "each epoch draws a new order"
    plain = TaskBatcher(_many_tasks(), *tables, meta_batch_size=4, shuffle=False)
    assert [b.tolist() for b in plain.batch_indices()] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batcher_resume_gives_the_same_remaining_batches(tables) -> None:
    full = TaskBatcher(_many_tasks(), *tables, meta_batch_size=3, seed=2)
    list(full.batch_indices())  # epoch 0
    expected = [b.tolist() for b in full.batch_indices()]  # epoch 1

    interrupted = TaskBatcher(_many_tasks(), *tables, meta_batch_size=3, seed=2)
    list(interrupted.batch_indices())
    stream = interrupted.batch_indices()
    done = [next(stream).tolist(), next(stream).tolist()]
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "position": 2, "seed": 2}

    resumed = TaskBatcher(_many_tasks(), *tables, meta_batch_size=3, seed=99)
    resumed.load_state_dict(state)
    rest = [b.tolist() for b in resumed.batch_indices()]
    assert done + rest == expected
    assert resumed.epoch == 2


def test_batcher_yields_padded_batches(tables) -> None:
    batcher = TaskBatcher(_many_tasks(), *tables, meta_batch_size=4, shuffle=False)
    batches = list(batcher)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert batches[0].support_mask.shape == (4, 3) and batches[0].support_mask.all()


def test_batcher_rejects_zero_batch_size(tables) -> None:
    with pytest.raises(ValueError, match="meta_batch_size"):
        TaskBatcher(_many_tasks(), *tables, meta_batch_size=0)


def test_bucketed_batches_visit_every_task_once_and_pad_less() -> None:
    from metarec.data.splits import split_dataset
    from metarec.data.synthetic import SyntheticConfig, generate

    data = generate(SyntheticConfig(num_users=400, num_items=300, num_ratings=30_000))
    tasks = split_dataset(data).train
    padded = {}
    for bucket in (1, 4):
        batcher = TaskBatcher(tasks, data.users, data.items, 16, seed=3, bucket=bucket)
        batches = batcher.batches(0)
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(tasks)))
        assert [b.tolist() for b in batches] == [b.tolist() for b in batcher.batches(0)]
        padded[bucket] = sum(len(b) * tasks.support_sizes[b].max() for b in batches)
    assert padded[4] < 0.8 * padded[1]
