"""Item-item similarities of rating residuals, as the neighbourhood models use them
(``item-knn``, ``ridge``'s ``neighbours``): damped biases, then the shrunk cosine of every
two items' residual columns.

    b_i = sum_{u in R(i)} (r_ui - mu - b_u) / (|R(i)| + reg_item)
    b_u = sum_{i in R(u)} (r_ui - mu - b_i) / (|R(u)| + reg_user)       (alternated)
    s_ij = (sum_u e_ui e_uj) / (||e_i|| ||e_j||) * n_ij / (n_ij + shrink)

with ``e_ui = r_ui - mu - b_u - b_i`` and ``n_ij`` the number of users who rated both
(Koren, 2008). The table is dense, ``items x items`` float32, with a zero diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ITEMS = 20_000
"""The most items a similarity table takes: it is dense (``4 * items^2`` bytes) and built
from two more of that size."""


def shrunk_mean(keys: np.ndarray, values: np.ndarray, size: int, reg: float) -> np.ndarray:
    """``sum_{rows of key} value / (count of key + reg)`` for each key in 0..size-1 (0 for a
    key with no rows)."""
    sums = np.bincount(keys, weights=values, minlength=size)
    denominators = np.bincount(keys, minlength=size) + reg
    return np.divide(sums, denominators, out=np.zeros(size), where=denominators > 0)


@dataclass(frozen=True)
class DampedBiases:
    """``mu``, the user biases and the item biases of the module text."""

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray


def damped_biases(user: np.ndarray, item: np.ndarray, rating: np.ndarray, num_users: int,
                  num_items: int, reg_user: float = 15.0, reg_item: float = 10.0,
                  passes: int = 10) -> DampedBiases:
    """The damped biases of ratings ``(user, item, rating)``: ``passes`` alternations,
    items first, from zero user biases (one pass is LensKit's damped ``Bias``)."""
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    rating = np.asarray(rating, dtype=np.float64)
    mu = float(rating.mean())
    user_bias = np.zeros(num_users)
    item_bias = np.zeros(num_items)
    for _ in range(passes):
        item_bias = shrunk_mean(item, rating - mu - user_bias[user], num_items, reg_item)
        user_bias = shrunk_mean(user, rating - mu - item_bias[item], num_users, reg_user)
    return DampedBiases(mu, user_bias, item_bias)


def residual_similarity(user: np.ndarray, item: np.ndarray, residual: np.ndarray,
                        num_users: int, num_items: int, shrink: float = 100.0,
                        chunk: int | None = None) -> np.ndarray:
    """The ``items x items`` table of shrunk residual cosines ``s_ij`` (module text) of
    the ratings ``(user, item)`` with residuals ``residual``; sums over ``chunk`` users at a
    time (by default as many as make 16M user x item cells)."""
    if num_items > MAX_ITEMS:
        raise ValueError(
            f"an item x item similarity table of {num_items:,} items needs "
            f"{12 * num_items ** 2 / 2 ** 30:.1f} GiB to build (at most {MAX_ITEMS:,} items)")
    if shrink < 0:
        raise ValueError(f"shrink must be at least 0, got {shrink}")
    products = np.zeros((num_items, num_items), dtype=np.float32)
    counts = np.zeros((num_items, num_items), dtype=np.float32)
    order = np.argsort(user, kind="stable")
    users, items, values = user[order], item[order], residual[order]
    chunk = chunk or max(1, 2 ** 24 // max(num_items, 1))
    bounds = np.searchsorted(users, np.arange(0, num_users + chunk, chunk))
    for start, stop in zip(bounds[:-1], bounds[1:], strict=False):
        if start == stop:
            continue
        rows = users[start:stop] - users[start]
        dense = np.zeros((int(rows[-1]) + 1, num_items), dtype=np.float32)
        dense[rows, items[start:stop]] = values[start:stop]
        rated = np.zeros_like(dense)
        rated[rows, items[start:stop]] = 1.0
        products += dense.T @ dense
        counts += rated.T @ rated
    norms = np.sqrt(np.diag(products))
    products *= counts
    counts += shrink
    counts *= np.outer(norms, norms)  # now the denominator
    similarity = np.divide(products, counts, out=np.zeros_like(products), where=counts > 0)
    del products, counts
    np.fill_diagonal(similarity, 0.0)
    return similarity
