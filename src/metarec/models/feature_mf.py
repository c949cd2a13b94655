"""Factorisation over side features: a user vector and an item vector, their dot product
plus biases; the user vector is what a user's support set adapts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metarec.data.dataset import Dataset, FieldSpec
from metarec.models.base import check_sizes
from metarec.models.feature_mlp import FeatureMLP


class FactorHead(nn.Module):
    """``mean + u_0 + v_0 + <u_1:, v_1:>`` from the embedded fields ``x`` ``[..., width]``.

    ``u = user(x[..., :user_width])`` is a linear map of the user's embedded fields to a
    bias and ``factors`` factors (what MAML-R adapts per user: after adaptation it is a
    user vector fitted to the support set, started from the one the user's features give);
    ``v = item(x[..., user_width:])`` is an MLP (``hidden`` ReLU layers) of the item's
    embedded fields, its id embedding included when the model has one. With
    ``joint_hidden`` layers, ``joint(x)``, an MLP over the user's and the item's fields
    together (its output layer starting at zero), is added: interactions of user and item
    fields that a dot product cannot express, learned globally (the prediction stays affine
    in the user vector). Returns ``[..., 1]``.
    """

    affine_in = ("user.bias",)
    """The parameters the prediction is affine in whose design matrix ``forward(x,
    design=True)`` writes out: the user vector (ridge's and ANIL's scope)."""

    def __init__(self, user_width: int, item_width: int, factors: int,
                 hidden: Sequence[int], rating_mean: float,
                 joint_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.user_width = user_width
        self.user = nn.Linear(user_width, factors + 1)
        layers: list[nn.Module] = []
        width = item_width
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, factors + 1))
        self.item = nn.Sequential(*layers)
        self.mean = nn.Parameter(torch.tensor(float(rating_mean)))
        self.joint = _joint_mlp(user_width + item_width, joint_hidden) if joint_hidden else None

    def forward(self, x: torch.Tensor, *, design: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``[..., 1]`` predictions; with ``design``, also the derivative of each with
        respect to the user tower's bias, ``[1, v_1:]`` ``[..., factors + 1]``, first."""
        u = self.user(x[..., :self.user_width])
        v = self.item(x[..., self.user_width:])
        out = _factor_score(self.mean, u, v)
        if self.joint is not None:
            out = out + self.joint(x)[..., 0]
        if design:
            return torch.cat([torch.ones_like(v[..., :1]), v[..., 1:]], -1), out.unsqueeze(-1)
        return out.unsqueeze(-1)

    def item_vectors(self, params: dict[str, torch.Tensor], x_item: torch.Tensor
                     ) -> torch.Tensor:
        """The item tower's output ``v`` ``[..., factors + 1]`` for the items' embedded
        fields ``x_item``, with the tower's parameters from ``params`` (head-relative
        names, ``item.*``): what :meth:`score_items` combines with a user's vector."""
        return functional_call(self.item, {k[len("item."):]: v for k, v in params.items()
                                           if k.startswith("item.")}, (x_item,))

    @property
    def separable(self) -> bool:
        """Whether a prediction reads the user's and the item's fields only through
        their towers (no joint MLP over both), so :meth:`score_items` applies."""
        return self.joint is None

    def score_items(self, params: dict[str, torch.Tensor], x_user: torch.Tensor,
                    vectors: torch.Tensor) -> torch.Tensor:
        """``forward``'s predictions ``[N]`` of one user, whose embedded fields are
        ``x_user`` ``[user_width]``, for the items whose :meth:`item_vectors` are
        ``vectors`` ``[N, factors + 1]`` (the user tower applied once, not per item);
        parameters from ``params``. Only for a :attr:`separable` head."""
        if not self.separable:
            raise ValueError("score_items needs a head without a joint MLP")
        u = F.linear(x_user, params["user.weight"], params["user.bias"])
        return _factor_score(params["mean"], u, vectors)


def _factor_score(mean: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``mean + u_0 + v_0 + <u_1:, v_1:>`` over the last dimension (broadcast)."""
    return mean + u[..., 0] + v[..., 0] + (u[..., 1:] * v[..., 1:]).sum(-1)


def _joint_mlp(width: int, hidden: Sequence[int]) -> nn.Sequential:
    """ReLU layers of ``hidden`` sizes and a scalar output layer that starts at zero."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    output = nn.Linear(width, 1)
    nn.init.zeros_(output.weight)
    nn.init.zeros_(output.bias)
    return nn.Sequential(*layers, output)


class FeatureMF(FeatureMLP):
    """A two-tower factorisation over MeLU's fields: the body embeds the user and item
    fields as in :class:`FeatureMLP` (same options, id embeddings included); the head is a
    :class:`FactorHead`. ``head`` (MAML-R, Meta-SGD) = the user tower (``head.user.``):
    adapting it fits the user's bias and factors to the support set, the item side and
    every embedding stay global; ``output`` (ANIL) = the tower's bias alone, i.e. the
    user's bias and factors as a free vector. Learners that adapt "every parameter" adapt
    the user side only (:meth:`memory_names`). ``joint_hidden`` adds the head's joint MLP
    over user and item fields (see :class:`FactorHead`), global like the item side.
    """

    def __init__(self, user_specs: Sequence[FieldSpec], item_specs: Sequence[FieldSpec], *,
                 embedding_dim: int = 32, hidden: Sequence[int] = (64,), factors: int = 32,
                 numeric_stats: dict[str, tuple[float, float]] | None = None,
                 num_users: int = 0, num_items: int = 0, rating_mean: float = 3.5,
                 joint_hidden: Sequence[int] = ()) -> None:
        check_sizes("FeatureMF", factors=factors, joint_hidden=joint_hidden)
        super().__init__(user_specs, item_specs, embedding_dim=embedding_dim, hidden=hidden,
                         numeric_stats=numeric_stats, num_users=num_users,
                         num_items=num_items, rating_mean=rating_mean)
        self.factors, self.joint_hidden = factors, tuple(joint_hidden)
        user_width = embedding_dim * len(self.body.user_fields)
        self.head = FactorHead(user_width, self.body.width - user_width, factors,
                               self.hidden, rating_mean, self.joint_hidden)
        self.head_prefixes = ("head.user.",)
        self.output_prefixes = ("head.user.bias",)

    def memory_names(self) -> list[str]:
        """The whole item side (item field tables, id tables, the item tower) and the joint
        MLP: what an item's vector learned from every user stays global when one user
        adapts, also for learners that adapt every other parameter (``maml``,
        ``reptile``, ``finetune``)."""
        return [n for n, _ in self.named_parameters()
                if n.startswith(("body.item_fields.", "body.user_fields.id.", "head.item.",
                                 "head.joint."))]

    def config(self) -> dict[str, Any]:
        config = {**super().config(), "kind": "FeatureMF", "factors": self.factors}
        if self.joint_hidden:
            config["joint_hidden"] = list(self.joint_hidden)
        return config

    @classmethod
    def for_dataset(cls, dataset: Dataset, **options: Any) -> FeatureMF:  # type: ignore[override]
        """A model over the side fields of ``dataset`` (see :meth:`FeatureMLP.for_dataset`)."""
        return super().for_dataset(dataset, **options)  # type: ignore[return-value]
