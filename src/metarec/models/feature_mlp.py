"""The MeLU architecture: embedded user and item fields, concatenated, then an MLP."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from metarec.data.dataset import Dataset, Fields, FieldSpec
from metarec.errors import ConfigError
from metarec.models.base import RatingModel, check_sizes

log = logging.getLogger(__name__)


class FieldEmbedding(nn.Module):
    """Embeds one field to ``[..., dim]``.

    Categorical fields are an ``nn.Embedding`` with the missing index 0 as padding;
    multi-valued fields are the mean of their members' embeddings (padding excluded),
    i.e. ``nn.EmbeddingBag(mode="mean")`` semantics written with ``F.embedding`` because
    ``embedding_bag`` has no ``vmap`` batching rule; numeric fields are standardised
    (missing -> 0) and projected by a ``Linear(1, dim)``.
    """

    def __init__(self, spec: FieldSpec, dim: int, mean: float = 0.0, std: float = 1.0,
                 num_rows: int | None = None) -> None:
        super().__init__()
        self.kind, self.mean, self.std = spec.kind, mean, std
        self.num_ids = num_rows
        if spec.kind == "numeric":
            self.linear = nn.Linear(1, dim)
        elif num_rows is None:
            self.embedding = nn.Embedding(spec.cardinality, dim, padding_idx=0)
            nn.init.normal_(self.embedding.weight, std=0.1)
            with torch.no_grad():
                self.embedding.weight[0].zero_()
        else:
            # An id embedding: id i is row i + 1; row 0 (padding, always zero) serves every
            # id outside the trained range, such as an item registered later. Rows start at
            # zero too, so an id never trained on contributes nothing: features decide.
            self.embedding = nn.Embedding(num_rows + 1, dim, padding_idx=0)
            nn.init.zeros_(self.embedding.weight)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if self.num_ids is not None:
            known = (values >= 0) & (values < self.num_ids)
            return self.embedding(torch.where(known, values + 1, torch.zeros_like(values)))
        if self.kind == "numeric":
            # Standardised in the model's dtype (a float64 model: in float64 too).
            x = (values.to(self.linear.weight.dtype) - self.mean) / self.std
            x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))  # missing, +-inf: 0
            return self.linear(x.unsqueeze(-1))
        vectors = self.embedding(values)
        if self.kind == "multi":
            present = (values != 0).to(vectors.dtype).unsqueeze(-1)
            return (vectors * present).sum(-2) / present.sum(-2).clamp_min(1.0)
        return vectors


class FieldEncoder(nn.Module):
    """The body: every user and item field embedded and concatenated to ``[..., width]``,
    the user part broadcast over the items it is paired with."""

    def __init__(self, user_fields: dict[str, nn.Module], item_fields: dict[str, nn.Module],
                 dim: int) -> None:
        super().__init__()
        self.user_fields = nn.ModuleDict(user_fields)
        self.item_fields = nn.ModuleDict(item_fields)
        self.width = dim * (len(self.user_fields) + len(self.item_fields))

    @staticmethod
    def _embed(modules: nn.ModuleDict, fields: Fields) -> torch.Tensor:
        return torch.cat([module(fields[name]) for name, module in modules.items()], dim=-1)

    def forward(self, user: Fields, item: Fields) -> torch.Tensor:
        parts = []
        if len(self.user_fields):
            u = self._embed(self.user_fields, user)
            batch = item["id"].shape
            while u.dim() - 1 < len(batch):
                u = u.unsqueeze(-2)
            parts.append(u.expand(*batch, u.shape[-1]))
        if len(self.item_fields):
            parts.append(self._embed(self.item_fields, item))
        return torch.cat(parts, dim=-1)


class FeatureMLP(RatingModel):
    """MeLU's model: every user and item field embedded (``embedding_dim``), concatenated,
    then ``hidden`` ReLU layers (64 -> 64) and a linear output predicting the rating.

    ``body`` = the embeddings (:class:`FieldEncoder`); ``head`` = the MLP and output layer
    (adapted per user by MAML-R; ANIL adapts only the last layer).
    ``user_id_embedding`` / ``item_id_embedding`` add an embedding of the id itself.
    """

    head_prefixes = ("head.",)

    def __init__(self, user_specs: Sequence[FieldSpec], item_specs: Sequence[FieldSpec], *,
                 embedding_dim: int = 32, hidden: Sequence[int] = (64, 64),
                 numeric_stats: dict[str, tuple[float, float]] | None = None,
                 num_users: int = 0, num_items: int = 0, rating_mean: float = 3.5) -> None:
        super().__init__()
        check_sizes(type(self).__name__, embedding_dim=embedding_dim, hidden=hidden)
        self.user_specs, self.item_specs = list(user_specs), list(item_specs)
        self.embedding_dim, self.hidden = embedding_dim, tuple(hidden)
        self.numeric_stats = dict(numeric_stats or {})
        self.num_users, self.num_items, self.rating_mean = num_users, num_items, rating_mean
        self.body = FieldEncoder(self._embeddings(self.user_specs, "user", num_users),
                                 self._embeddings(self.item_specs, "item", num_items),
                                 embedding_dim)
        width = self.body.width
        if width == 0:
            raise ConfigError("the model has no inputs: the data set has no user or item "
                              "fields left (see exclude_fields) and no id embedding is on; "
                              "set model.user_id_embedding / model.item_id_embedding = true")
        layers: list[nn.Module] = []
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        output = nn.Linear(width, 1)
        with torch.no_grad():
            output.bias.fill_(rating_mean)
        self.head = nn.Sequential(*layers, output)
        self.output_prefixes = (f"head.{len(layers)}.",)

    def _embeddings(self, specs: list[FieldSpec], side: str, num_ids: int) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {}
        for spec in specs:
            mean, std = self.numeric_stats.get(f"{side}.{spec.name}", (0.0, 1.0))
            modules[spec.name] = FieldEmbedding(spec, self.embedding_dim, mean, std)
        if num_ids:
            modules["id"] = FieldEmbedding(FieldSpec("id", "categorical"), self.embedding_dim,
                                           num_rows=num_ids)
        return modules

    def forward(self, user: Fields, item: Fields) -> torch.Tensor:
        return self.head(self.body(user, item)).squeeze(-1)

    def has_item_id_embedding(self) -> bool:
        return "id" in self.body.item_fields

    def memory_names(self) -> list[str]:
        """The id-embedding tables: per-entity memory shared by every user."""
        return [n for n, _ in self.named_parameters()
                if n.startswith(("body.user_fields.id.", "body.item_fields.id."))]

    def embedding_tables(self) -> dict[str, tuple[str, str]]:
        tables = {}
        for side, modules in (("user", self.body.user_fields), ("item", self.body.item_fields)):
            for field, module in modules.items():
                if hasattr(module, "embedding") and module.num_ids is None:
                    tables[f"body.{side}_fields.{field}.embedding.weight"] = (side, field)
        return tables

    def config(self) -> dict[str, Any]:
        return {"kind": "FeatureMLP",
                "user_specs": [asdict(s) for s in self.user_specs],
                "item_specs": [asdict(s) for s in self.item_specs],
                "embedding_dim": self.embedding_dim, "hidden": list(self.hidden),
                "numeric_stats": {k: list(v) for k, v in self.numeric_stats.items()},
                "num_users": self.num_users, "num_items": self.num_items,
                "rating_mean": self.rating_mean}

    @classmethod
    def from_config(cls, args: dict[str, Any]) -> FeatureMLP:
        args = dict(args)
        args["user_specs"] = [_spec(s) for s in args["user_specs"]]
        args["item_specs"] = [_spec(s) for s in args["item_specs"]]
        args["numeric_stats"] = {k: tuple(v) for k, v in args.get("numeric_stats", {}).items()}
        return cls(**args)

    @classmethod
    def for_dataset(cls, dataset: Dataset, *, user_id_embedding: bool = False,
                    item_id_embedding: bool = False, exclude_fields: Sequence[str] = (),
                    **options: Any) -> FeatureMLP:
        """A model over the side fields of ``dataset`` but ``exclude_fields`` (numeric
        fields standardised)."""
        if isinstance(exclude_fields, str):
            raise ConfigError(f"exclude_fields must be a list of field names, got the string "
                              f"{exclude_fields!r}: write [{exclude_fields!r}]")
        excluded = set(exclude_fields)
        known = {s.name for s in (*dataset.users.specs, *dataset.items.specs)}
        if excluded - known:  # a run checks its names against all its data sets at once
            log.warning("exclude_fields %s: no such field in %s (its fields: %s)",
                        sorted(excluded - known), dataset.name, sorted(known))
        user_specs = [s for s in dataset.users.specs if s.name not in excluded]
        item_specs = [s for s in dataset.items.specs if s.name not in excluded]
        stats = {}
        for side, table in (("user", dataset.users), ("item", dataset.items)):
            for spec in table.specs:
                if spec.kind == "numeric":
                    values = table.values[spec.name]
                    finite = values[torch.isfinite(values)].double()
                    mean = float(finite.mean()) if finite.numel() else 0.0
                    std = float(finite.std()) if finite.numel() > 1 else 1.0
                    stats[f"{side}.{spec.name}"] = (mean, std if std > 0 and
                                                    math.isfinite(std) else 1.0)
        rating_mean = float(dataset.interactions.rating.mean()) if len(
            dataset.interactions) else 3.5
        return cls(user_specs, item_specs, numeric_stats=stats,
                   num_users=dataset.num_users if user_id_embedding else 0,
                   num_items=dataset.num_items if item_id_embedding else 0,
                   rating_mean=rating_mean, **options)


def _spec(raw: dict[str, Any]) -> FieldSpec:
    return FieldSpec(raw["name"], raw["kind"], tuple(raw.get("vocab", ())))
