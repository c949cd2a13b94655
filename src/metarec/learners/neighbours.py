"""A neighbourhood term on an adapted model's residuals (``[per_learner.ridge]
neighbours = k``), as in Koren's (2008) integrated model, added after training.

After a task's solve, each prediction of item ``q`` gains what the user's support says
about the films most like it, beyond what the adapted model already explains:

    r_hat(u, q) = clip(f(w_u; q) + gamma * sum_j s_qj e_j / (sum_j s_qj + c)),
    e_j = r_j - f(w_u; j)        (the support residuals after adaptation)

over the ``k`` support items ``j`` with the largest positive similarity ``s_qj`` (the
shrunk cosines of the training ratings' bias residuals, :mod:`metarec.models.
item_similarity`, as ``item-knn`` uses them; 0 for a film training never saw, so new films
get no term), clipped to the training ratings' range. Training does not see the term (a
trained model is the same with or without it); ``gamma`` and ``c`` are then chosen on the
validation users from :data:`NEIGHBOUR_SCALES` x :data:`NEIGHBOUR_DAMPINGS`, where
``gamma = 0`` (no term) is a choice too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metarec.data.dataset import Interactions
from metarec.models.item_similarity import damped_biases, residual_similarity

SIMILARITY_SHRINK = 100.0
"""Co-raters by which the similarities are shrunk (``item-knn``'s default)."""

NEIGHBOUR_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
"""The scales ``gamma`` the validation users choose from (0: no term)."""

NEIGHBOUR_DAMPINGS = (0.25, 0.5, 1.0, 2.0)
"""The dampings ``c`` the validation users choose from."""


@dataclass
class NeighbourTables:
    """What the term reads, built from the training ratings: the item-item similarity
    table (on the learner's device, in its dtype) and the range of the ratings."""

    similarity: torch.Tensor
    rating_min: float
    rating_max: float

    @classmethod
    def from_ratings(cls, ratings: Interactions, num_users: int, num_items: int,
                     device: torch.device, dtype: torch.dtype) -> NeighbourTables:
        biases = damped_biases(ratings.user, ratings.item, ratings.rating, num_users,
                               num_items)
        residual = (ratings.rating.astype(np.float64) - biases.global_mean
                    - biases.user_bias[ratings.user] - biases.item_bias[ratings.item])
        similarity = residual_similarity(ratings.user, ratings.item, residual, num_users,
                                         num_items, SIMILARITY_SHRINK)
        return cls(torch.from_numpy(similarity).to(device, dtype),
                   float(ratings.rating.min()), float(ratings.rating.max()))


def neighbour_weights(similarity: torch.Tensor, query_items: torch.Tensor,
                      support_items: torch.Tensor, support_mask: torch.Tensor,
                      neighbours: int) -> torch.Tensor:
    """``[..., Q, S]``: for each query item, the similarities ``s_qj`` of its
    ``neighbours`` most similar support items (positive ones only), 0 for every other
    support row and for padding; items outside ``similarity`` have none."""
    size = similarity.shape[0]
    q_in, s_in = query_items < size, (support_items < size) & support_mask
    sim = similarity[torch.where(q_in, query_items, 0).unsqueeze(-1),
                     torch.where(s_in, support_items, 0).unsqueeze(-2)]
    sim = sim.clamp_min(0) * (q_in.unsqueeze(-1) & s_in.unsqueeze(-2)).to(sim.dtype)
    if sim.shape[-1] > neighbours:
        top = sim.topk(neighbours, dim=-1)
        sim = torch.zeros_like(sim).scatter(-1, top.indices, top.values)
    return sim


def neighbour_offset(weights: torch.Tensor, residual: torch.Tensor, scale: float,
                     damping: float) -> torch.Tensor:
    """``scale * sum_j w_qj e_j / (sum_j w_qj + damping)`` for ``weights`` ``[..., Q, S]``
    and support residuals ``residual`` ``[..., S]`` (0 on padding)."""
    total = (weights * residual.unsqueeze(-2)).sum(-1)
    return scale * total / (weights.sum(-1) + damping)


def choose_scale_and_damping(base: np.ndarray, terms: dict[float, np.ndarray],
                             ratings: np.ndarray, bounds: tuple[float, float],
                             loss: str) -> tuple[float, float]:
    """The ``(gamma, c)`` of the grid with the least ``loss`` (``"mse"`` or ``"mae"``) of
    ``clip(base + gamma * terms[c])`` against ``ratings`` (``base`` itself, unclipped, for
    ``gamma = 0``); ``terms[c]``: the term at ``gamma = 1`` and damping ``c``. Ties go to
    the smaller ``gamma``, then ``c``."""
    def error(pred: np.ndarray) -> float:
        residual = pred - ratings
        return float(np.mean(residual ** 2 if loss == "mse" else np.abs(residual)))

    best, choice = error(base), (0.0, NEIGHBOUR_DAMPINGS[0])  # no term: nothing clipped
    for scale in NEIGHBOUR_SCALES[1:]:
        for damping in NEIGHBOUR_DAMPINGS:
            value = error(np.clip(base + scale * terms[damping], *bounds))
            if value < best - 1e-12:
                best, choice = value, (scale, damping)
    return choice
