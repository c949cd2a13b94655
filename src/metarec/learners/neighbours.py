"""A neighbourhood term on an adapted model's residuals (``[per_learner.ridge]
neighbours = k``), as in Koren's (2008) integrated model.

After a task's solve, each prediction of item ``q`` gains what the user's support says
about the films most like it, beyond what the adapted model already explains:

    r_hat(u, q) = f(w_u; q) + gamma * sum_j s_qj e_j / (sum_j s_qj + c),
    e_j = r_j - f(w_u; j)        (the support residuals after adaptation)

over the ``k`` support items ``j`` with the largest positive similarity ``s_qj`` (the
shrunk cosines of the training ratings' bias residuals, :mod:`metarec.models.
item_similarity`; 0 for a film training never saw, so new films get no term). ``gamma``
and ``c`` are learned with the rest of the model, through the solve: the term is part of
every training task's query prediction. A training task's similarities leave its own
user's ratings out (:meth:`NeighbourTables.training_weights`): the tables are built from
every training rating, its query ratings included, and a query rating must not inform
its own prediction (at test time the query ratings are in no table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metarec.data.dataset import Interactions
from metarec.models.item_similarity import damped_biases, residual_sums, shrunk_cosine

SIMILARITY_SHRINK = 100.0
"""Co-raters by which the similarities are shrunk (``item-knn``'s default)."""


@dataclass
class NeighbourTables:
    """What the term reads, built from the training ratings: the similarity table, the
    sums it is made of (to take one user's ratings out of it) and the damped biases whose
    residuals they sum, on the learner's device and in its dtype."""

    similarity: torch.Tensor
    products: torch.Tensor
    counts: torch.Tensor
    global_mean: float
    user_bias: torch.Tensor
    item_bias: torch.Tensor

    @classmethod
    def from_ratings(cls, ratings: Interactions, num_users: int, num_items: int,
                     device: torch.device, dtype: torch.dtype) -> NeighbourTables:
        biases = damped_biases(ratings.user, ratings.item, ratings.rating, num_users,
                               num_items)
        residual = (ratings.rating.astype(np.float64) - biases.global_mean
                    - biases.user_bias[ratings.user] - biases.item_bias[ratings.item])
        products, counts = residual_sums(ratings.user, ratings.item, residual, num_users,
                                         num_items)
        similarity = shrunk_cosine(products, counts, SIMILARITY_SHRINK)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(device, dtype)

        return cls(tensor(similarity), tensor(products), tensor(counts), biases.global_mean,
                   tensor(biases.user_bias), tensor(biases.item_bias))

    def weights(self, query_items: torch.Tensor, support_items: torch.Tensor,
                support_mask: torch.Tensor, neighbours: int) -> torch.Tensor:
        """:func:`neighbour_weights` of :attr:`similarity` (tasks whose query ratings
        training never saw)."""
        return neighbour_weights(self.similarity, query_items, support_items, support_mask,
                                 neighbours)

    def training_weights(self, users: torch.Tensor, query_items: torch.Tensor,
                         query_ratings: torch.Tensor, support_items: torch.Tensor,
                         support_ratings: torch.Tensor, support_mask: torch.Tensor,
                         neighbours: int) -> torch.Tensor:
        """:meth:`weights` for training tasks (``users`` ``[B]``), whose ratings the tables
        hold: each task's similarities without its own user's ratings of the two items
        (``sum e e`` less ``e_uq e_uj``, one co-rater fewer, both norms less the user's
        residual), so that a query rating never informs its own prediction."""
        residual_q = self._residual(users, query_items, query_ratings)
        residual_s = self._residual(users, support_items, support_ratings)
        q, j = query_items.unsqueeze(-1), support_items.unsqueeze(-2)
        products = self.products[q, j] - residual_q.unsqueeze(-1) * residual_s.unsqueeze(-2)
        counts = self.counts[q, j] - 1
        norms = self.products.diagonal()
        norm_q = (norms[query_items] - residual_q ** 2).clamp_min(0).unsqueeze(-1)
        norm_s = (norms[support_items] - residual_s ** 2).clamp_min(0).unsqueeze(-2)
        denominator = (counts + SIMILARITY_SHRINK) * (norm_q * norm_s).sqrt()
        usable = (denominator > 0) & (q != j) & support_mask.unsqueeze(-2)
        sim = torch.where(usable, products * counts / torch.where(usable, denominator, 1.0),
                          0.0)
        return keep_neighbours(sim, usable, neighbours)

    def _residual(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor
                  ) -> torch.Tensor:
        """``r - mu - b_u - b_i`` of each task's rows (users ``[B]``, rows ``[B, N]``)."""
        return (ratings - self.global_mean - self.user_bias[users].unsqueeze(-1)
                - self.item_bias[items])


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
    return keep_neighbours(sim, q_in.unsqueeze(-1) & s_in.unsqueeze(-2), neighbours)


def keep_neighbours(sim: torch.Tensor, usable: torch.Tensor, neighbours: int) -> torch.Tensor:
    """``sim`` ``[..., Q, S]`` with only the ``neighbours`` largest positive entries of
    each row where ``usable``, 0 elsewhere."""
    sim = sim.clamp_min(0) * usable.to(sim.dtype)
    if sim.shape[-1] > neighbours:
        top = sim.topk(neighbours, dim=-1)
        sim = torch.zeros_like(sim).scatter(-1, top.indices, top.values)
    return sim


def neighbour_offset(weights: torch.Tensor, residual: torch.Tensor, scale: torch.Tensor,
                     damping: torch.Tensor) -> torch.Tensor:
    """``scale * sum_j w_qj e_j / (sum_j w_qj + damping)`` for ``weights`` ``[..., Q, S]``
    and support residuals ``residual`` ``[..., S]`` (0 on padding)."""
    total = (weights * residual.unsqueeze(-2)).sum(-1)
    return scale * total / (weights.sum(-1) + damping)
