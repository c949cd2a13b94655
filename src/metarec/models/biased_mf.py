"""Biased matrix factorisation: ``mu + b_u + b_i + <p_u, q_i>``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metarec.data.dataset import Fields
from metarec.models.base import RatingModel, check_sizes


class BiasedMF(RatingModel):
    """Global mean + user and item biases + dot product of ``factors``-dim factors.

    Head = the user's bias and factors (what personalisation changes); body = item side
    and the global mean. Users or items outside the trained range are not supported:
    ``BiasedMF`` needs ids seen in training (new users get the bias fallback in the
    baseline that wraps it).
    """

    head_prefixes = ("user_bias.", "user_factors.")
    output_prefixes = ("user_bias.", "user_factors.")

    def __init__(self, num_users: int, num_items: int, *, factors: int = 32,
                 rating_mean: float = 3.5, init_std: float = 0.05) -> None:
        super().__init__()
        check_sizes("BiasedMF", factors=factors)
        self.num_users, self.num_items, self.factors = num_users, num_items, factors
        self.rating_mean, self.init_std = rating_mean, init_std
        self.global_mean = nn.Parameter(torch.tensor(float(rating_mean)))
        self.user_bias = nn.Embedding(num_users, 1)
        self.item_bias = nn.Embedding(num_items, 1)
        self.user_factors = nn.Embedding(num_users, factors)
        self.item_factors = nn.Embedding(num_items, factors)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.item_factors.weight, std=init_std)

    def forward(self, user: Fields, item: Fields) -> torch.Tensor:
        users, items = user["id"], item["id"]
        while users.dim() < items.dim():
            users = users.unsqueeze(-1)
        users = users.expand_as(items)
        dot = (self.user_factors(users) * self.item_factors(items)).sum(-1)
        return (self.global_mean + self.user_bias(users).squeeze(-1)
                + self.item_bias(items).squeeze(-1) + dot)

    def config(self) -> dict[str, Any]:
        return {"kind": "BiasedMF", "num_users": self.num_users, "num_items": self.num_items,
                "factors": self.factors, "rating_mean": self.rating_mean,
                "init_std": self.init_std}

    @classmethod
    def from_config(cls, args: dict[str, Any]) -> BiasedMF:
        return cls(**args)
