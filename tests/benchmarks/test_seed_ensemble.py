"""`seed_ensemble.py --blend`: the weight is chosen on the validation users alone and the
blend reaches only the items the second predictor knows."""

from __future__ import annotations

import numpy as np
import pytest


def test_the_blend_weight_comes_from_validation_and_spares_unknown_items(tasks,
                                                                        benchmarks) -> None:
    ensemble = pytest.importorskip("seed_ensemble")
    sets = {"validation": tasks([0, 1], [3.0, 4.0]), "warm": tasks([0, 2], [5.0, 1.0])}
    # on validation the first errs by +1 and the second by -1: the weight is 0.5;
    # on warm the first would be better alone, which must not move the weight
    first = {"validation": np.array([4.0, 5.0]), "warm": np.array([5.0, 1.0])}
    second = {"validation": np.array([2.0, 3.0]), "warm": np.array([3.0, 3.0])}
    known = np.array([True, True, False])  # item 2 is new to the second predictor
    weight, records = ensemble.blended("a+b", first, second, sets, known, "mae", 7, None)
    assert weight == 0.5
    warm = {r["metric"]: r["value"] for r in records if r["scenario"] == "warm"}
    # item 0: (5 + 3) / 2 = 4 against 5; item 2 keeps the first's 1 against 1
    assert warm["mae"] == pytest.approx(0.5)
    assert {r["learner"] for r in records} == {"a+b"} and {r["seed"] for r in records} == {7}
    _, everywhere = ensemble.blended("a+b", first, second, sets, None, "mae", 7, None)
    warm = {r["metric"]: r["value"] for r in everywhere if r["scenario"] == "warm"}
    assert warm["mae"] == pytest.approx((1.0 + 1.0) / 2)  # item 2 now (1 + 3) / 2 = 2
