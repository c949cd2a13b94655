"""Helpers for the benchmark scripts' tests: the scripts import as modules from
``benchmarks/``, and task sets are built by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from metarec.data.dataset import Interactions
from metarec.tasks.taskset import TaskSet

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def query_tasks(items: list[int], ratings: list[float],
                users: list[int] | None = None) -> TaskSet:
    """One task whose query rows are ``items`` rated ``ratings`` (by ``users``, default
    user 0), with a one-row support set."""
    n = len(items)
    support = Interactions(np.zeros(1, np.int64), np.zeros(1, np.int64),
                           np.ones(1, np.float32), np.full(1, np.nan))
    query = Interactions(np.array(users if users is not None else [0] * n, np.int64),
                         np.array(items, np.int64), np.array(ratings, np.float32),
                         np.full(n, np.nan))
    return TaskSet(np.zeros(1, np.int64), support, np.array([0, 1]), query, np.array([0, n]))


@pytest.fixture
def tasks() -> Callable[..., TaskSet]:
    """:func:`query_tasks`."""
    return query_tasks


@pytest.fixture
def benchmarks(monkeypatch) -> Path:
    """The ``benchmarks/`` folder, importable for the test."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return BENCHMARKS
