"""Convex blends of predictors' ratings, their weights chosen on validation tasks.

Two models that err differently average to one that errs less: a meta-learner that knows
items by their features and a matrix factorisation that knows them by their ratings are
such a pair. The blend is ``w * first + (1 - w) * second`` on the query rows where the
second predictor applies (for a factorisation: items it was trained on) and ``first``
elsewhere; ``w`` is chosen on validation tasks, never on the tasks it is scored on.
Evaluation sees predictions only, so a blend is two prediction vectors and a mask.

More than two predictors blend the same way on rows where all of them apply:
:func:`simplex_weights` chooses convex weights on a grid over the simplex and
:func:`mix` applies them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

BLEND_STEP = 0.05
BLEND_WEIGHTS: tuple[float, ...] = tuple(float(w) for w in np.round(np.linspace(0, 1, 21), 2))
"""The weights :func:`blend_weight` tries: the multiples of :data:`BLEND_STEP`."""


def _arrays(first: np.ndarray, second: np.ndarray,
            applies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    applies = np.asarray(applies, bool)
    if not first.shape == second.shape == applies.shape or first.ndim != 1:
        raise ValueError("first, second and applies must be vectors of one length; got "
                         f"shapes {first.shape}, {second.shape}, {applies.shape}")
    return first, second, applies


def blend(first: np.ndarray, second: np.ndarray, weight: float,
          applies: np.ndarray) -> np.ndarray:
    """``weight * first + (1 - weight) * second`` where ``applies``, ``first`` elsewhere.

    ``weight`` lies in [0, 1]; 1 is ``first`` alone. ``applies`` marks the rows the second
    predictor knows (see :func:`known_items`)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the blend weight must lie in [0, 1], got {weight}")
    first, second, applies = _arrays(first, second, applies)
    return np.where(applies, weight * first + (1.0 - weight) * second, first)


def blend_weight(first: np.ndarray, second: np.ndarray, target: np.ndarray,
                 applies: np.ndarray, loss: str = "mse") -> float:
    """The weight of :data:`BLEND_WEIGHTS` whose :func:`blend` has the least ``loss``
    (``"mse"`` or ``"mae"``) against ``target`` over validation rows; on a tie the larger
    weight (more of ``first``). With no row where ``second`` applies, 1. (The blend of
    two by :func:`simplex_weights` on the rows where ``second`` applies.)"""
    first, second, applies = _arrays(first, second, applies)
    target = np.asarray(target, np.float64)
    if target.shape != first.shape:
        raise ValueError(f"target has shape {target.shape}, predictions {first.shape}")
    _power(loss)
    if not applies.any():
        return 1.0
    return simplex_weights([first[applies], second[applies]], target[applies], loss,
                           BLEND_STEP)[0]


def _power(loss: str) -> int:
    """The exponent of the error for ``loss``."""
    if loss not in ("mse", "mae"):
        raise ValueError(f"loss must be 'mse' or 'mae', got {loss!r}")
    return 2 if loss == "mse" else 1


def _simplex(k: int, steps: int) -> Iterator[tuple[int, ...]]:
    """Every ``k`` non-negative integers summing to ``steps``, the first largest first."""
    if k == 1:
        yield (steps,)
        return
    for first in range(steps, -1, -1):
        for rest in _simplex(k - 1, steps - first):
            yield (first, *rest)


def _stack(predictions: Sequence[np.ndarray]) -> np.ndarray:
    """``[k, n]`` float64 from ``k`` prediction vectors of one length ``n``."""
    vectors = [np.asarray(p, np.float64) for p in predictions]
    shapes = {v.shape for v in vectors}
    if not vectors or len(shapes) != 1 or vectors[0].ndim != 1:
        raise ValueError("need one or more prediction vectors of one length; got shapes "
                         f"{[v.shape for v in vectors]}")
    return np.stack(vectors)


def mix(predictions: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``sum_i weights[i] * predictions[i]``: a convex blend (the weights are non-negative
    and sum to 1)."""
    stacked = _stack(predictions)
    w = np.asarray(weights, np.float64)
    if w.shape != (len(stacked),):
        raise ValueError(f"need one weight per prediction vector of one length; got "
                         f"{len(w)} weights for predictions of shape {stacked.shape}")
    if (w < 0).any() or abs(w.sum() - 1.0) > 1e-9:
        raise ValueError(f"the weights must be non-negative and sum to 1, got {list(w)}")
    return w @ stacked


def simplex_weights(predictions: Sequence[np.ndarray], target: np.ndarray,
                    loss: str = "mse", step: float = 0.05) -> tuple[float, ...]:
    """The convex weights, on the grid of multiples of ``step``, whose :func:`mix` of
    ``predictions`` has the least ``loss`` (``"mse"`` or ``"mae"``) against ``target``
    over validation rows. On a tie the weights that come first with the earlier
    predictors' weights largest (so for two predictors the larger weight on the first,
    as :func:`blend_weight`)."""
    power = _power(loss)
    steps = round(1.0 / step)
    if steps < 1 or abs(steps * step - 1.0) > 1e-9:
        raise ValueError(f"step must divide 1 into whole steps, got {step}")
    stacked = _stack(predictions)
    target = np.asarray(target, np.float64)
    if stacked.shape[1:] != target.shape:
        raise ValueError(f"need prediction vectors of the target's length {target.shape}; "
                         f"got shape {stacked.shape}")
    grid = np.array(list(_simplex(len(stacked), steps)), np.float64) / steps
    errors = np.concatenate([np.mean(np.abs(chunk @ stacked - target) ** power, axis=1)
                             for chunk in np.array_split(grid, -(-len(grid) // 256))])
    least = errors.min()
    # rounding makes equal blends differ in the last bits; those still count as a tie
    first = int(np.flatnonzero(errors <= least + 1e-12 * max(1.0, least))[0])
    return tuple(float(w) for w in np.round(grid[first], 10))


def known_items(train_items: np.ndarray, num_items: int) -> np.ndarray:
    """``[num_items]`` booleans: which items have at least one training rating (the items a
    factorisation has learned a row for)."""
    known = np.zeros(num_items, bool)
    known[np.asarray(train_items, np.int64)] = True
    return known
