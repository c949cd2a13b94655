"""Accuracy and ranking metrics: plain functions over arrays, the formula in each docstring.

Rating metrics compare ``true`` and ``pred`` row by row. Ranking metrics rank each user's
candidates by ``pred`` (descending; NaN predictions rank last), score each user, then
average over users. The candidates of a user are simply that user's rows: the user's query
items ("within the query set", as in MeLU) or every item ("over all candidates"), in which
case ``true`` is NaN for unrated items, meaning not relevant and gain 0. Rating metrics
ignore rows whose ``true`` is NaN. A metric with no row or user to average over is NaN.

Ties: candidates of one user with equal predictions form a tie group (a user's NaN
predictions form one, ranked last), and a tie group has no order. Every ranking metric is
its expected value over all orders of every tie group, each order equally likely (McSherry
& Najork, "Computing Information Retrieval Performance Measures Efficiently in the Presence
of Tied Scores", ECIR 2008). So no metric depends on the row order of its input (query rows
come in time order; a constant predictor must not be scored by when ratings were made),
and without ties every metric is the plain one.

Notation: for user u, ``pi_u(j)`` is the candidate at 1-based rank j; ``n_u`` the number of
candidates; ``Rel_u = {i : true_ui >= threshold}``; ``k_u = min(k, n_u)``. Candidate i's
tie group ``T(i)`` holds ranks ``a+1..b`` (``a`` candidates are predicted above it,
``b - a = |T(i)|``). Its expected discount and its chance to be in the top k are the means
over those ranks: ``D_u(i, k) = (1/|T(i)|) sum_{j=a+1..min(b, k)} 1/log2(j + 1)`` and
``s_u(i, k) = |{a+1..b} ∩ {1..k}| / |T(i)|``; without a tie, ``1/log2(rank_i + 1)`` or 0
past k, and ``[rank_i <= k]``.
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
    """Rows sorted by (user, pred descending), with per-row rank and tie group: a tie
    group is a run of one user's rows with equal predictions (NaN equal to NaN), whose
    members share the 0-based ranks ``[tie_start, tie_start + tie_size)``."""

    group: np.ndarray  # user group 0..G-1 of each row, in ranked order
    rank: np.ndarray  # 0-based rank of each row within its user, in ranked order
    true: np.ndarray  # true rating of each row, in ranked order (NaN = unrated)
    ideal_true: np.ndarray  # true ratings re-sorted best first within each user
    tie_start: np.ndarray  # rank of the first row of each row's tie group, in ranked order
    tie_size: np.ndarray  # number of rows in each row's tie group, in ranked order
    num_candidates: np.ndarray  # number of rows of each user group
    num_groups: int

    def per_user(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Sum over each user of ``values``, one per row of ``rows`` (indices; all rows
        when None), as float64 (``np.bincount`` gives int64 when there are no rows)."""
        group = self.group if rows is None else self.group[rows]
        return np.bincount(group, weights=values, minlength=self.num_groups
                           ).astype(np.float64, copy=False)

    def head(self, k: int) -> np.ndarray:
        """Indices of the rows whose tie group starts in the top k: the only rows that
        can reach the top k in some order of their group."""
        return np.flatnonzero(self.tie_start < k)

    def top_share(self, k: int, rows: np.ndarray) -> np.ndarray:
        """For each of the ``rows`` (of the head), the share of its tie group's ranks that
        are < k: its chance to be in the top k (1 or 0 without a tie)."""
        size = self.tie_size[rows]
        return np.minimum(k - self.tie_start[rows], size) / size

    def expected_discount(self, k: int, rows: np.ndarray) -> np.ndarray:
        """For each of the ``rows`` (of the head), the mean of ``1/log2(p + 2) [p < k]``
        over the ranks p of its tie group: its expected DCG discount at k."""
        start, size = self.tie_start[rows], self.tie_size[rows]
        stop = np.minimum(start + size, k)
        # cumulative[p] = the sum of the discounts of the ranks before p
        ranks = np.arange(stop.max(initial=0))
        cumulative = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(ranks + 2.0))))
        tied = (cumulative[stop] - cumulative[start]) / size
        # A row without a tie keeps its own discount, to the last bit.
        return np.where(size == 1, 1.0 / np.log2(self.rank[rows] + 2.0), tied)


def _rank(user: np.ndarray, true: np.ndarray, pred: np.ndarray) -> _Ranking:
    user = np.asarray(user)
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if not (user.shape == true.shape == pred.shape) or user.ndim != 1:
        raise ValueError(f"user, true and pred must be 1-d of one length; got shapes "
                         f"{user.shape}, {true.shape}, {pred.shape}")
    codes, uniques = pd.factorize(user)
    num_rows = len(user)
    # lexsort (stable; last key is primary). -NaN is NaN, which sorts last: NaN predictions
    # rank last. The order within a tie group is arbitrary: no metric reads it.
    order = np.lexsort((-pred, codes))
    group = codes[order]
    starts = np.searchsorted(group, np.arange(len(uniques)))
    rank = np.arange(num_rows) - starts[group]
    ranked_pred = pred[order]
    same = (ranked_pred[1:] == ranked_pred[:-1]) | (np.isnan(ranked_pred[1:])
                                                   & np.isnan(ranked_pred[:-1]))
    new_tie = np.ones(num_rows, dtype=bool)
    new_tie[1:] = (group[1:] != group[:-1]) | ~same
    first = np.flatnonzero(new_tie)  # first row of each tie group
    tie = np.cumsum(new_tie) - 1  # tie group of each row
    known_true = np.where(np.isnan(true), -np.inf, true)
    ideal_order = np.lexsort((-known_true, codes))
    return _Ranking(group=group, rank=rank, true=true[order], ideal_true=true[ideal_order],
                    tie_start=rank[first][tie],
                    tie_size=np.diff(first, append=num_rows)[tie],
                    num_candidates=np.diff(starts, append=num_rows),
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
    # Each row at its tie group's mean discount: DCG is linear in the discounts, so this is
    # its expectation over the orders of the group.
    head = ranking.head(k)
    expected = _gain(ranking.true[head], gain) * ranking.expected_discount(k, head)
    dcg = ranking.per_user(expected, head)
    # The ideal ordering has the same ranks (each user's rows are contiguous in both orders),
    # and ties in it are between equal gains: no expectation to take.
    top = np.flatnonzero(ranking.rank < k)
    discount = 1.0 / np.log2(ranking.rank[top] + 2.0)
    idcg = ranking.per_user(_gain(ranking.ideal_true[top], gain) * discount, top)
    keep = idcg > 0
    return _mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=keep), keep)


def _counts(ranking: _Ranking, k: int,
            threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user: the expected number of relevant candidates in the top k, the number of
    relevant candidates, and the length ``k_u`` of the top-k list."""
    _check_k(k)
    relevant = ranking.true >= threshold  # NaN >= t is False
    head = ranking.head(k)
    relevant_head = head[relevant[head]]
    hits = ranking.per_user(ranking.top_share(k, relevant_head), relevant_head)
    num_relevant = np.bincount(ranking.group[relevant], minlength=ranking.num_groups)
    return (hits, num_relevant.astype(np.float64),
            np.minimum(k, ranking.num_candidates).astype(np.float64))


def _precision(ranking: _Ranking, k: int, threshold: float) -> float:
    hits, _, listed = _counts(ranking, k, threshold)
    return _mean(hits / np.maximum(listed, 1.0), listed > 0)


def _recall(ranking: _Ranking, k: int, threshold: float) -> float:
    hits, num_relevant, _ = _counts(ranking, k, threshold)
    keep = num_relevant > 0
    return _mean(hits / np.maximum(num_relevant, 1.0), keep)


def _f1(ranking: _Ranking, k: int, threshold: float) -> float:
    # From the expected precision and recall. That is the expected F1 too: per user, F1 is
    # 2 hits / (k_u + |Rel_u|), linear in the hits, whose expectation precision and recall
    # already take.
    hits, num_relevant, listed = _counts(ranking, k, threshold)
    keep = num_relevant > 0
    precision = hits / np.maximum(listed, 1.0)
    recall = hits / np.maximum(num_relevant, 1.0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return _mean(f1, keep)


def _none_drawn(size: np.ndarray, relevant: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """The chance that ``drawn`` of ``size`` items taken at random, ``relevant`` of them
    relevant, include no relevant one: ``C(size - relevant, drawn) / C(size, drawn) =
    prod_{i < drawn} (size - relevant - i) / (size - i)``, elementwise."""
    chance = np.ones(len(size))
    for i in range(int(drawn.max(initial=0))):  # at most k factors, each over all users
        factor = np.maximum(size - relevant - i, 0.0) / np.maximum(size - i, 1.0)
        chance *= np.where(i < drawn, factor, 1.0)
    return chance


def _hit_rate(ranking: _Ranking, k: int, threshold: float) -> float:
    _check_k(k)
    relevant = ranking.true >= threshold
    num_relevant = np.bincount(ranking.group[relevant], minlength=ranking.num_groups)
    head = ranking.head(k)
    relevant_head = head[relevant[head]]
    inside = ranking.tie_start[relevant_head] + ranking.tie_size[relevant_head] <= k
    # A relevant candidate whose tie group lies wholly inside the top k is a sure hit.
    sure = np.bincount(ranking.group[relevant_head[inside]],
                       minlength=ranking.num_groups) > 0
    # Otherwise the only chance is a user's one tie group that straddles rank k: k -
    # tie_start of its members, drawn at random, make the top k.
    straddle = head[ranking.tie_start[head] + ranking.tie_size[head] > k]
    straddle_user = ranking.group[straddle]
    size = np.zeros(ranking.num_groups)
    size[straddle_user] = ranking.tie_size[straddle]
    drawn = np.zeros(ranking.num_groups)
    drawn[straddle_user] = k - ranking.tie_start[straddle]
    tied_relevant = np.bincount(straddle_user[relevant[straddle]],
                                minlength=ranking.num_groups)
    chance = 1.0 - _none_drawn(size, tied_relevant, drawn)  # 0 where nothing straddles
    return _mean(np.where(sure, 1.0, chance), num_relevant > 0)


# --- ranking metrics: the public functions ---------------------------------------------------

def ndcg_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
              gain: Gain = "exp") -> float:
    """Normalised discounted cumulative gain at k, averaged over users.

    ``DCG_u@k = sum_i g(true_ui) D_u(i, k)`` over the user's candidates, with gain
    ``g(r) = 2^r - 1`` (``gain="exp"``) or ``g(r) = r`` (``gain="linear"``), g = 0 for
    NaN (unrated), and ``D_u(i, k)`` the expected discount of i's tie group (module
    docstring): the expectation over tie orders of ``sum_{j=1..k_u} g(true_{u,pi_u(j)}) /
    log2(j + 1)``, which it is without ties. ``IDCG_u@k`` is that plain sum over the user's
    candidates sorted by true rating, best first (ties there are between equal gains).
    ``nDCG@k = mean_u DCG_u@k / IDCG_u@k`` over users with ``IDCG_u@k > 0`` (users with
    nothing to gain are skipped); IDCG does not depend on the order, so this is the
    expected nDCG.
    """
    return _ndcg(_rank(user, true, pred), k, gain)


def precision_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
                   threshold: float = DEFAULT_THRESHOLD) -> float:
    """Precision at k, averaged over all users.

    ``P_u@k = H_u@k / k_u`` with ``H_u@k = sum_{i in Rel_u} s_u(i, k)`` the expected
    ``|top_k(u) ∩ Rel_u|`` over tie orders (module docstring; without ties, the number of
    relevant candidates among the user's ``k_u = min(k, n_u)`` best-predicted ones). A user
    with fewer than k candidates is judged on the list they can have, as in LensKit.
    ``P@k = mean_u P_u@k``.
    """
    return _precision(_rank(user, true, pred), k, threshold)


def recall_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
                threshold: float = DEFAULT_THRESHOLD) -> float:
    """Recall at k, averaged over users with at least one relevant candidate.

    ``R_u@k = H_u@k / |Rel_u|`` with ``H_u@k`` the expected ``|top_k(u) ∩ Rel_u|`` of
    :func:`precision_at_k`; ``R@k = mean_{u : |Rel_u| > 0} R_u@k``.
    """
    return _recall(_rank(user, true, pred), k, threshold)


def f1_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
            threshold: float = DEFAULT_THRESHOLD) -> float:
    """F1 at k, averaged over users with at least one relevant candidate.

    ``F1_u@k = 2 P_u@k R_u@k / (P_u@k + R_u@k)`` (0 when both are 0), with ``P_u@k`` and
    ``R_u@k`` the expected precision and recall of :func:`precision_at_k` and
    :func:`recall_at_k`; ``F1@k = mean_{u : |Rel_u| > 0} F1_u@k`` (the mean of per-user F1,
    not F1 of the means). As ``F1_u@k = 2 H_u@k / (k_u + |Rel_u|)`` is linear in the hits,
    this is also the expected F1 over tie orders.
    """
    return _f1(_rank(user, true, pred), k, threshold)


def hit_rate_at_k(user: np.ndarray, true: np.ndarray, pred: np.ndarray, k: int,
                  threshold: float = DEFAULT_THRESHOLD) -> float:
    """Hit rate at k, averaged over users with at least one relevant candidate.

    ``HR_u@k = Pr(|top_k(u) ∩ Rel_u| > 0)`` over tie orders: 1 if a relevant candidate's
    tie group lies wholly within ranks 1..k; else, for the tie group T straddling rank k
    (``a < k < b``, module docstring) with r relevant members of which ``m = k - a`` make
    the top k, ``1 - C(|T| - r, m) / C(|T|, m)``; else 0. Without ties: 1 if a relevant
    candidate is among the top k, else 0. ``HR@k = mean_{u : |Rel_u| > 0} HR_u@k`` (a user
    with nothing relevant could never be hit, so they are skipped as for recall).
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
    by ``pred``. Tied scores count at their expectation over all their orders (module
    docstring), so the frame's row order changes no metric.
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
