"""Accuracy and ranking metrics: plain functions over arrays, the formula in each docstring.

Rating metrics compare ``true`` and ``pred`` row by row. Ranking metrics rank each user's
candidates by ``pred`` (descending; ties keep the order the rows were given in, so results
are deterministic; NaN predictions rank last), score each user, then average over users.
The candidates of a user are simply that user's rows: the user's query items ("within the
query set", as in MeLU) or every item ("over all candidates"), in which case ``true`` is NaN
for unrated items, meaning not relevant and gain 0. Rating metrics ignore rows whose
``true`` is NaN. A metric with no row or user to average over is NaN.

Notation: for user u, ``pi_u(j)`` is the candidate at 1-based rank j; ``n_u`` the number of
candidates; ``Rel_u = {i : true_ui >= threshold}``; ``k_u = min(k, n_u)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Gain = Literal["exp", "linear"]

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10)
DEFAULT_THRESHOLD = 4.0
MAX_LEVELS = 21
"""At most this many distinct ratings make a discrete scale (:func:`rating_levels`)."""


# --- rating metrics -------------------------------------------------------------------------

def _rated(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if true.shape != pred.shape:
        raise ValueError(f"true and pred differ in shape: {true.shape} vs {pred.shape}")
    known = ~np.isnan(true)
    return true[known], pred[known]


def mae(true: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error: ``MAE = (1/N) sum_r |true_r - pred_r|`` over the N rows whose
    ``true`` is not NaN."""
    true, pred = _rated(true, pred)
    return float(np.abs(true - pred).mean()) if len(true) else float("nan")


def rmse(true: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error: ``RMSE = sqrt((1/N) sum_r (true_r - pred_r)^2)`` over the N
    rows whose ``true`` is not NaN."""
    true, pred = _rated(true, pred)
    return float(np.sqrt(np.square(true - pred).mean())) if len(true) else float("nan")


def rating_levels(ratings: np.ndarray, max_levels: int = MAX_LEVELS) -> np.ndarray | None:
    """The sorted distinct values of a discrete rating scale (1-5 stars, half stars, 1-10),
    read from observed ``ratings``; None when there are more than ``max_levels`` of them
    (a continuous scale: nothing to round to)."""
    values = np.asarray(ratings, dtype=np.float64)
    levels = np.unique(values[~np.isnan(values)])
    return levels if 0 < len(levels) <= max_levels else None


def round_to_levels(pred: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each prediction replaced by the nearest of the sorted ``levels`` (the higher of two
    equally near; below the lowest or above the highest: that end). NaN stays NaN."""
    pred = np.asarray(pred, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    upper = np.clip(np.searchsorted(levels, pred), 0, len(levels) - 1)
    lower = np.maximum(upper - 1, 0)
    nearer_upper = np.abs(levels[upper] - pred) <= np.abs(pred - levels[lower])
    out = np.where(nearer_upper, levels[upper], levels[lower])
    return np.where(np.isnan(pred), np.nan, out)


def mae_rounded(true: np.ndarray, pred: np.ndarray, levels: np.ndarray) -> float:
    """MAE of the predictions rounded to the rating scale:
    ``(1/N) sum_r |true_r - L(pred_r)|`` with ``L`` the nearest of ``levels``
    (:func:`round_to_levels`), over the N rows whose ``true`` is not NaN.

    On a discrete scale the absolute error of a rating is minimised by the median of its
    distribution, and that median is a level (a whole star), not a value between two:
    this is the MAE of the point prediction that absolute error itself asks for, from the
    same scores (which the ranking metrics use unrounded)."""
    return mae(true, round_to_levels(pred, levels))


def accuracy(true: np.ndarray, pred: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Like/dislike accuracy: ``(1/N) sum_r [ (true_r >= t) == (pred_r >= t) ]`` with
    ``t = threshold``, over the N rows whose ``true`` is not NaN."""
    true, pred = _rated(true, pred)
    if not len(true):
        return float("nan")
    return float(((true >= threshold) == (pred >= threshold)).mean())


# --- ranking: one sort shared by every ranking metric ----------------------------------------

@dataclass(frozen=True)
class _Ranking:
    """Rows sorted by (user, pred descending, given order), with per-row rank."""

    group: np.ndarray  # user group 0..G-1 of each row, in ranked order
    rank: np.ndarray  # 0-based rank of each row within its user, in ranked order
    true: np.ndarray  # true rating of each row, in ranked order (NaN = unrated)
    ideal_true: np.ndarray  # true ratings re-sorted best first within each user
    num_groups: int

    def per_user(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum of ``values`` over each user's rows (optionally only rows in ``mask``), as
        float64 (``np.bincount`` gives int64 when there are no rows)."""
        group, weights = (self.group, values) if mask is None else (self.group[mask],
                                                                     values[mask])
        return np.bincount(group, weights=weights, minlength=self.num_groups
                           ).astype(np.float64, copy=False)


def _rank(user: np.ndarray, true: np.ndarray, pred: np.ndarray) -> _Ranking:
    user = np.asarray(user)
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if not (user.shape == true.shape == pred.shape) or user.ndim != 1:
        raise ValueError(f"user, true and pred must be 1-d of one length; got shapes "
                         f"{user.shape}, {true.shape}, {pred.shape}")
    codes, uniques = pd.factorize(user)
    position = np.arange(len(user))
    # lexsort: last key is primary. -NaN is NaN, which sorts last: NaN predictions rank last.
    order = np.lexsort((position, -pred, codes))
    group = codes[order]
    starts = np.searchsorted(group, np.arange(len(uniques)))
    rank = position - starts[group]
    known_true = np.where(np.isnan(true), -np.inf, true)
    ideal_order = np.lexsort((position, -known_true, codes))
    return _Ranking(group=group, rank=rank, true=true[order], ideal_true=true[ideal_order],
                    num_groups=len(uniques))


def _gain(true: np.ndarray, gain: Gain) -> np.ndarray:
    if gain == "exp":
        values = np.exp2(true) - 1.0
    elif gain == "linear":
        values = true.copy()
    else:
        raise ValueError(f"gain must be 'exp' or 'linear', got {gain!r}")
    return np.where(np.isnan(values), 0.0, values)


def _check_k(k: int) -> None:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _mean(values: np.ndarray, keep: np.ndarray) -> float:
    return float(values[keep].mean()) if keep.any() else float("nan")


def _ndcg(ranking: _Ranking, k: int, gain: Gain) -> float:
    _check_k(k)
    top = ranking.rank < k
    discount = 1.0 / np.log2(ranking.rank + 2.0)
    dcg = ranking.per_user(_gain(ranking.true, gain) * discount, top)
    # The ideal ordering has the same ranks (each user's rows are contiguous in both orders).
    idcg = ranking.per_user(_gain(ranking.ideal_true, gain) * discount, top)
    keep = idcg > 0
    return _mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=keep), keep)


def _counts(ranking: _Ranking, k: int,
            threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _check_k(k)
    relevant = (ranking.true >= threshold).astype(np.float64)  # NaN >= t is False
    hits = ranking.per_user(relevant, ranking.rank < k)
    num_relevant = ranking.per_user(relevant)
    num_candidates = np.bincount(ranking.group, minlength=ranking.num_groups)
    return hits, num_relevant, np.minimum(k, num_candidates).astype(np.float64)


def _precision(ranking: _Ranking, k: int, threshold: float) -> float:
    hits, _, listed = _counts(ranking, k, threshold)
    return _mean(hits / np.maximum(listed, 1.0), listed > 0)


def _recall(ranking: _Ranking, k: int, threshold: float) -> float:
    hits, num_relevant, _ = _counts(ranking, k, threshold)
    keep = num_relevant > 0
    return _mean(hits / np.maximum(num_relevant, 1.0), keep)


def _f1(ranking: _Ranking, k: int, threshold: float) -> float:
    hits, num_relevant, listed = _counts(ranking, k, threshold)
    keep = num_relevant > 0
    precision = hits / np.maximum(listed, 1.0)
    recall = hits / np.maximum(num_relevant, 1.0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return _mean(f1, keep)


def _hit_rate(ranking: _Ranking, k: int, threshold: float) -> float:
    hits, num_relevant, _ = _counts(ranking, k, threshold)
    return _mean((hits > 0).astype(np.float64), num_relevant > 0)


# --- ranking metrics: the public functions ---------------------------------------------------

def ndcg_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
              gain: Gain = "exp") -> float:
    """Normalised discounted cumulative gain at k, averaged over users.

    ``DCG_u@k = sum_{j=1..k_u} g(true_{u,pi_u(j)}) / log2(j + 1)`` with gain
    ``g(r) = 2^r - 1`` (``gain="exp"``) or ``g(r) = r`` (``gain="linear"``), and g = 0 for
    NaN (unrated). ``IDCG_u@k`` is the same sum over the user's candidates sorted by true
    rating, best first. ``nDCG@k = mean_u DCG_u@k / IDCG_u@k`` over users with
    ``IDCG_u@k > 0`` (users with nothing to gain are skipped).
    """
    return _ndcg(_rank(user, true, pred), k, gain)


def precision_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
                   threshold: float = DEFAULT_THRESHOLD) -> float:
    """Precision at k, averaged over all users.

    ``P_u@k = |top_k(u) ∩ Rel_u| / k_u`` where ``top_k(u)`` are the user's ``k_u =
    min(k, n_u)`` best-predicted candidates (a user with fewer than k candidates is judged
    on the list they can have, as in LensKit). ``P@k = mean_u P_u@k``.
    """
    return _precision(_rank(user, true, pred), k, threshold)


def recall_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
                threshold: float = DEFAULT_THRESHOLD) -> float:
    """Recall at k, averaged over users with at least one relevant candidate.

    ``R_u@k = |top_k(u) ∩ Rel_u| / |Rel_u|``; ``R@k = mean_{u : |Rel_u| > 0} R_u@k``.
    """
    return _recall(_rank(user, true, pred), k, threshold)


def f1_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
            threshold: float = DEFAULT_THRESHOLD) -> float:
    """F1 at k, averaged over users with at least one relevant candidate.

    ``F1_u@k = 2 P_u@k R_u@k / (P_u@k + R_u@k)`` (0 when both are 0), with ``P_u@k`` and
    ``R_u@k`` as in :func:`precision_at_k` and :func:`recall_at_k`;
    ``F1@k = mean_{u : |Rel_u| > 0} F1_u@k`` (the mean of per-user F1, not F1 of the means).
    """
    return _f1(_rank(user, true, pred), k, threshold)


def hit_rate_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
                  threshold: float = DEFAULT_THRESHOLD) -> float:
    """Hit rate at k, averaged over users with at least one relevant candidate.

    ``HR_u@k = 1 if |top_k(u) ∩ Rel_u| > 0 else 0``; ``HR@k = mean_{u : |Rel_u| > 0} HR_u@k``
    (a user with nothing relevant could never be hit, so they are skipped as for recall).
    """
    return _hit_rate(_rank(user, true, pred), k, threshold)


# --- all metrics of one frame ----------------------------------------------------------------

def compute_metrics(frame: pd.DataFrame, ks: Sequence[int] = DEFAULT_KS,
                    threshold: float = DEFAULT_THRESHOLD,
                    levels: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of a ``user, item, true, pred`` frame, keyed by name.

    Names: ``mae``, ``rmse``, ``mae_rounded`` (only with the scale's ``levels``, see
    :func:`mae_rounded`), ``accuracy``, then for each k in ``ks``: ``ndcg@k`` (exp
    gain), ``ndcg_lin@k`` (linear gain), ``precision@k``, ``recall@k``, ``f1@k``, ``hit@k``.
    ``threshold`` is the like/relevance threshold of accuracy and the set metrics. The
    ranking metrics rank by the frame's ``score`` column when it has one (a predictor
    whose ranking is not by its rating prediction: ``popularity`` ranks by count), else
    by ``pred``. The frame's row order is the tie-break order of the ranking metrics.
    """
    missing = [c for c in ("user", "true", "pred") if c not in frame.columns]
    if missing:
        raise ValueError(f"prediction frame lacks column(s) {missing}; has "
                         f"{list(frame.columns)}")
    true = frame["true"].to_numpy(dtype=np.float64)
    pred = frame["pred"].to_numpy(dtype=np.float64)
    out: dict[str, float] = {
        "mae": mae(true, pred),
        "rmse": rmse(true, pred),
    }
    if levels is not None:
        out["mae_rounded"] = mae_rounded(true, pred, levels)
    out["accuracy"] = accuracy(true, pred, threshold)
    score = frame["score"].to_numpy(dtype=np.float64) if "score" in frame.columns else pred
    ranking = _rank(frame["user"].to_numpy(), true, score)
    for k in ks:
        out[f"ndcg@{k}"] = _ndcg(ranking, k, "exp")
        out[f"ndcg_lin@{k}"] = _ndcg(ranking, k, "linear")
        out[f"precision@{k}"] = _precision(ranking, k, threshold)
        out[f"recall@{k}"] = _recall(ranking, k, threshold)
        out[f"f1@{k}"] = _f1(ranking, k, threshold)
        out[f"hit@{k}"] = _hit_rate(ranking, k, threshold)
    return out
