"""A convex blend of two predictors' ratings, its weight chosen on validation tasks.

Two models that err differently average to one that errs less: a meta-learner that knows
items by their features and a matrix factorisation that knows them by their ratings are
such a pair. The blend is ``w * first + (1 - w) * second`` on the query rows where the
second predictor applies (for a factorisation: items it was trained on) and ``first``
elsewhere; ``w`` is chosen on validation tasks, never on the tasks it is scored on.
Evaluation sees predictions only, so a blend is two prediction vectors and a mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BLEND_WEIGHTS: tuple[float, ...] = tuple(float(w) for w in np.round(np.linspace(0, 1, 21), 2))


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
                 applies: np.ndarray, loss: str = "mse",
                 weights: Sequence[float] = BLEND_WEIGHTS) -> float:
    """The weight of ``weights`` whose :func:`blend` has the least ``loss`` (``"mse"`` or
    ``"mae"``) against ``target`` over validation rows; on a tie the larger weight (more of
    ``first``). With no row where ``second`` applies, 1."""
    first, second, applies = _arrays(first, second, applies)
    target = np.asarray(target, np.float64)
    if target.shape != first.shape:
        raise ValueError(f"target has shape {target.shape}, predictions {first.shape}")
    if loss not in ("mse", "mae"):
        raise ValueError(f"loss must be 'mse' or 'mae', got {loss!r}")
    if not applies.any():
        return 1.0
    power = 2 if loss == "mse" else 1

    def error(weight: float) -> float:
        residual = (blend(first, second, weight, applies) - target)[applies]
        return float(np.mean(np.abs(residual) ** power))

    errors = {float(w): error(w) for w in weights}
    least = min(errors.values())
    # rounding makes equal blends differ in the last bits; those still count as a tie
    return max(w for w, e in errors.items() if e <= least + 1e-12 * max(1.0, least))


def known_items(train_items: np.ndarray, num_items: int) -> np.ndarray:
    """``[num_items]`` booleans: which items have at least one training rating (the items a
    factorisation has learned a row for)."""
    known = np.zeros(num_items, bool)
    known[np.asarray(train_items, np.int64)] = True
    return known
