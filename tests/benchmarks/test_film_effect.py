"""`film_effect.py`: the leave-one-user-out per-film offset, on hand-computed residuals."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.data.dataset import Interactions


def _query(items: list[int], ratings: list[float]) -> Interactions:
    n = len(items)
    return Interactions(np.arange(n, dtype=np.int64), np.array(items, np.int64),
                        np.array(ratings, np.float32), np.full(n, np.nan))


def test_offset_reads_only_the_other_raters_of_the_film(benchmarks) -> None:
    film_effect = pytest.importorskip("film_effect")
    # Film 0: residuals 1, 2, 3 (three users); film 1: one user, residual -1.
    query = _query([0, 0, 0, 1], [4.0, 5.0, 5.0, 2.0])
    pred = np.array([3.0, 3.0, 2.0, 3.0])
    # shrink 1: film 0's rows get (2+3)/3, (1+3)/3, (1+2)/3; film 1 has no other rater.
    expected = np.mean([abs(1 - 5 / 3), abs(2 - 4 / 3), abs(3 - 1), 1.0])
    assert film_effect.film_offset_mae(query, pred, 2, 1.0) == pytest.approx(expected)
    # A very large shrinkage leaves the plain MAE.
    assert film_effect.film_offset_mae(query, pred, 2, 1e12) == pytest.approx(7 / 4)


def test_a_shared_offset_is_removed(benchmarks) -> None:
    film_effect = pytest.importorskip("film_effect")
    # Every rater of film 0 is under-predicted by exactly 1: with no shrinkage the
    # other raters' mean residual removes it.
    query = _query([0, 0, 0, 0], [4.0, 3.0, 5.0, 2.0])
    pred = np.array([3.0, 2.0, 4.0, 1.0])
    assert film_effect.film_offset_mae(query, pred, 1, 0.0) == pytest.approx(0.0)
