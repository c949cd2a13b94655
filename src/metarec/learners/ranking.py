"""Top-k selection and the argument checks that every ``recommend`` and scoring call
shares."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

import numpy as np

from metarec.errors import InputError

if TYPE_CHECKING:
    from metarec.data.dataset import Interactions
    from metarec.learners.base import HasFeatures


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


def _whole(value: object) -> int | None:
    """``value`` as an int when it is an integer (a Python or numpy integer, a 0-d
    integer array or tensor), else None (a float, a bool, anything else)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def check_request(user: int, k: int, num_users: int) -> int:
    """``user`` as an int; an :class:`~metarec.errors.InputError` unless it is an integer
    with ``0 <= user < num_users`` (a row of the user feature table) and ``k`` an integer
    ``>= 0``."""
    index = _whole(user)
    if index is None:
        raise InputError(f"user index must be an integer, got {user!r}")
    if not 0 <= index < num_users:
        raise InputError(f"user index {index} is out of range: the user table has "
                         f"{num_users} rows (0..{num_users - 1})")
    count = _whole(k)
    if count is None or count < 0:
        raise InputError(f"k must be a whole number >= 0, got {k!r}")
    return index


def check_items(items: np.ndarray, num_items: int, what: str = "item") -> None:
    """Raise :class:`~metarec.errors.InputError` unless every entry of ``items`` is a
    row of the item feature table (``num_items`` rows)."""
    items = np.asarray(items)
    if items.size and items.dtype.kind not in "iu":  # ([] reads as float: nothing to check)
        raise InputError(f"{what} indices must be whole numbers, got dtype {items.dtype}")
    _check_rows(items, num_items, "item", what)


def _check_rows(index: np.ndarray, num_rows: int, side: str, what: str) -> None:
    """An :class:`~metarec.errors.InputError` naming the first entry of ``index`` that is
    not a row of the ``side`` table (``num_rows`` rows)."""
    out = np.flatnonzero((index < 0) | (index >= num_rows))
    if len(out):
        raise InputError(f"{what} {int(out[0])}: {side} index {int(index[out[0]])} is "
                         f"outside the {side} table ({num_rows} rows)")


def check_ratings(ratings: Interactions, features: HasFeatures, what: str = "event"
                  ) -> None:
    """Raise :class:`~metarec.errors.InputError` for a rating of ``ratings`` that is not
    a finite number or a user or item index outside the feature tables, naming the
    first (``what`` and its position)."""
    bad = np.flatnonzero(~np.isfinite(ratings.rating))
    if len(bad):
        raise InputError(f"{what} {int(bad[0])}: rating {float(ratings.rating[bad[0]])} is "
                         "not a finite number")
    _check_rows(ratings.user, features.users.num_rows, "user", what)
    _check_rows(ratings.item, features.items.num_rows, "item", what)
