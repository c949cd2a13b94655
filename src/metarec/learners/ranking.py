"""Top-k selection and the argument checks that every ``recommend`` shares."""

from __future__ import annotations

import numpy as np

from metarec.errors import InputError


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores``, highest first, ties by index: the first
    ``k`` of a stable descending sort, without sorting every score (NaN ranks last)."""
    key = -np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    if k >= len(key):
        return np.argsort(key, kind="stable")[:k]
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = np.partition(key, k - 1)[k - 1]
    candidates = np.flatnonzero(key <= kth)  # every score tied with the k-th, too
    return candidates[np.argsort(key[candidates], kind="stable")][:k]


def check_request(user: int, k: int, num_users: int) -> None:
    """Raise :class:`~metarec.errors.InputError` unless ``0 <= user < num_users`` (a row
    of the user feature table) and ``k >= 0``."""
    if not 0 <= int(user) < num_users:
        raise InputError(f"user index {user} is out of range: the user table has "
                         f"{num_users} rows (0..{num_users - 1})")
    if k < 0:
        raise InputError(f"k must be >= 0, got {k}")
