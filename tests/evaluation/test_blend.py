"""The blend of two predictors: exact values on hand-made vectors, and the weight chosen
on validation rows is the loss's argmin over the grid."""

from __future__ import annotations

import numpy as np
import pytest

from metarec.evaluation.blend import (
    BLEND_WEIGHTS,
    blend,
    blend_weight,
    known_items,
    mix,
    simplex_weights,
)


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


def test_simplex_weights_find_the_exact_blend_of_three() -> None:
    target = np.array([1.0, 2.0, 3.0, 4.0])
    # 0.5 * a + 0.25 * b + 0.25 * c == target exactly, and no other grid point is
    a = target + np.array([1.0, -1.0, 1.0, -1.0])
    b = target + np.array([-2.0, 0.0, -2.0, 4.0])
    c = target + np.array([0.0, 2.0, 0.0, -2.0])
    assert np.allclose(0.5 * a + 0.25 * b + 0.25 * c, target)
    for loss in ("mse", "mae"):
        assert simplex_weights([a, b, c], target, loss) == (0.5, 0.25, 0.25)
    assert np.allclose(mix([a, b, c], (0.5, 0.25, 0.25)), target)


def test_simplex_weights_agree_with_the_two_predictor_blend_and_break_ties_alike() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(1, 6, 50).astype(float)
    first, second = target + rng.normal(0, 1, 50), target + rng.normal(0.3, 0.8, 50)
    for loss in ("mse", "mae"):
        w = blend_weight(first, second, target, np.ones(50, bool), loss)
        assert simplex_weights([first, second], target, loss) == pytest.approx((w, 1 - w))
    same = target + 1.0
    assert simplex_weights([same, same], target) == (1.0, 0.0)  # a tie: the first wins
    assert simplex_weights([same], target) == (1.0,)


def test_mix_and_simplex_weights_refuse_what_is_not_a_convex_blend() -> None:
    x = np.zeros(3)
    with pytest.raises(ValueError, match="sum to 1"):
        mix([x, x], (0.7, 0.7))
    with pytest.raises(ValueError, match="one weight per"):
        mix([x, x], (1.0,))
    with pytest.raises(ValueError, match="step"):
        simplex_weights([x], x, step=0.3)
    with pytest.raises(ValueError, match="of one length"):
        simplex_weights([x, np.zeros(2)], x)
    with pytest.raises(ValueError, match="loss"):
        simplex_weights([x], x, loss="huber")
