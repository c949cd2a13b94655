"""The blend of two predictors: exact values on hand-made vectors, and the weight chosen
on validation rows is the loss's argmin over the grid."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.evaluation.blend import BLEND_WEIGHTS, blend, blend_weight, known_items


def test_blend_mixes_where_the_second_applies_and_keeps_the_first_elsewhere() -> None:
    first = np.array([4.0, 2.0, 5.0])
    second = np.array([2.0, 4.0, 1.0])
    applies = np.array([True, True, False])
    # 0.25 * 4 + 0.75 * 2 = 2.5; 0.25 * 2 + 0.75 * 4 = 3.5; row 3 keeps first's 5
    np.testing.assert_allclose(blend(first, second, 0.25, applies), [2.5, 3.5, 5.0])
    np.testing.assert_allclose(blend(first, second, 1.0, applies), first)
    np.testing.assert_allclose(blend(first, second, 0.0, applies), [2.0, 4.0, 5.0])


def test_the_weight_halves_two_opposite_errors() -> None:
    target = np.array([1.0, 3.0, 5.0, 2.0])
    applies = np.ones(4, bool)
    for loss in ("mse", "mae"):
        assert blend_weight(target + 1, target - 1, target, applies, loss) == 0.5
        assert blend_weight(target, target - 1, target, applies, loss) == 1.0
        assert blend_weight(target + 2, target, target, applies, loss) == 0.0


def test_the_weight_is_the_grid_argmin_and_ignores_rows_where_the_second_does_not_apply(
) -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(1, 6, 200).astype(float)
    first = target + rng.normal(0.3, 0.8, 200)
    second = target + rng.normal(-0.2, 0.6, 200)
    applies = rng.random(200) < 0.7
    chosen = blend_weight(first, second, target, applies, "mae")
    errors = {w: np.abs(blend(first, second, w, applies) - target)[applies].mean()
              for w in BLEND_WEIGHTS}
    assert errors[chosen] == min(errors.values())
    # rows where only the first predictor counts cannot move the weight
    wild = np.where(applies, first, first + 100.0)
    assert blend_weight(wild, second, target, applies, "mae") == chosen


def test_ties_go_to_the_first_predictor_and_no_applicable_row_means_the_first_alone(
) -> None:
    same = np.array([3.0, 4.0])
    assert blend_weight(same, same, np.array([1.0, 5.0]), np.ones(2, bool)) == 1.0
    assert blend_weight(same, same + 9, same, np.zeros(2, bool)) == 1.0


def test_known_items_marks_the_items_with_a_training_rating() -> None:
    np.testing.assert_array_equal(known_items(np.array([3, 0, 3]), 5),
                                  [True, False, False, True, False])


def test_bad_input_is_refused_with_a_clear_message() -> None:
    one = np.ones(3)
    with pytest.raises(ValueError, match="weight must lie in"):
        blend(one, one, 1.5, np.ones(3, bool))
    with pytest.raises(ValueError, match="one length"):
        blend(one, np.ones(2), 0.5, np.ones(3, bool))
    with pytest.raises(ValueError, match="loss must be"):
        blend_weight(one, one, one, np.ones(3, bool), loss="huber")
    with pytest.raises(ValueError, match="target has shape"):
        blend_weight(one, one, np.ones(2), np.ones(3, bool))
