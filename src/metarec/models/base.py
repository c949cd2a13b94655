"""What every metarec model provides, and building one from a JSON-able config."""

from __future__ import annotations

import numbers
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from metarec.data.dataset import Fields
from metarec.errors import CheckpointError, ConfigError


class RatingModel(nn.Module):
    """Base of every model: ``forward(user_fields, item_fields) -> ratings``.

    User fields have batch shape ``U`` and item fields ``I``, where ``I == U`` (pairs) or
    ``I == U + (S,)`` (S items per user); the output has shape ``I``. Subclasses set
    ``head_prefixes`` (decision layers, adapted per user by MAML-R) and
    ``output_prefixes`` (the last layer, adapted by ANIL); everything else is body.
    """

    head_prefixes: tuple[str, ...] = ()
    output_prefixes: tuple[str, ...] = ()

    @abstractmethod
    def forward(self, user: Fields, item: Fields) -> torch.Tensor:
        """Predicted ratings of the (user, item) pairs."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-able values (``model_from_config`` inverts it)."""

    @property
    def splits_head(self) -> bool:
        """True when ``forward == head(body(user, item))`` with ``body`` and ``head``
        sub-modules, so head-only adaptation can embed once and adapt the head alone."""
        return isinstance(getattr(self, "body", None), nn.Module) and isinstance(
            getattr(self, "head", None), nn.Module)

    def head_names(self) -> list[str]:
        """Names of the head (decision-layer) parameters."""
        return [n for n, _ in self.named_parameters() if n.startswith(self.head_prefixes)]

    def output_names(self) -> list[str]:
        """Names of the output-layer parameters."""
        return [n for n, _ in self.named_parameters() if n.startswith(self.output_prefixes)]

    def has_item_id_embedding(self) -> bool:
        """Whether items have an id embedding beside their features (what
        ``learner.item_id_dropout`` hides)."""
        return False

    def memory_names(self) -> list[str]:
        """Per-entity tables (id embeddings) that stay global: what an item's row learned
        from every user is not rewritten by one user's few ratings."""
        return []

    def embedding_tables(self) -> dict[str, tuple[str, str]]:
        """Parameter name -> (side, field) of every embedding table indexed by a field's
        codes (not the id tables), so a task can adapt only the rows its codes select."""
        return {}

    def body_names(self) -> list[str]:
        """Names of the body (embedding) parameters."""
        head = set(self.head_names())
        return [n for n, _ in self.named_parameters() if n not in head]


def check_sizes(model: str, **sizes: int | Sequence[int]) -> None:
    """A :class:`ConfigError` naming the first of ``sizes`` (a width, or a list of layer
    widths) that is not a whole number >= 1."""
    for name, value in sizes.items():
        several = isinstance(value, Sequence)
        for width in value if several else [value]:
            if (isinstance(width, bool) or not isinstance(width, numbers.Integral)
                    or width < 1):
                what = "layer widths, each a whole number" if several else "a whole number"
                raise ConfigError(f"{model}: {name} must be {what} >= 1, got "
                                  f"{list(value) if several else value!r}")


def model_classes() -> dict[str, type[RatingModel]]:
    """Every model kind by its config name (``model.kind``), in one place."""
    from metarec.models.biased_mf import BiasedMF
    from metarec.models.feature_mf import FeatureMF
    from metarec.models.feature_mlp import FeatureMLP

    return {"FeatureMLP": FeatureMLP, "FeatureMF": FeatureMF, "BiasedMF": BiasedMF}


def model_from_config(config: dict[str, Any]) -> RatingModel:
    """Rebuild a model (with fresh weights) from :meth:`RatingModel.config`."""
    args = dict(config)
    kind = args.pop("kind", None)
    classes = model_classes()
    if kind not in classes:
        raise CheckpointError(f"unknown model kind {kind!r}; expected one of "
                              f"{', '.join(classes)}")
    return classes[kind].from_config(args)  # type: ignore[attr-defined]


def build_model(kind: str, dataset: Any, **options: Any) -> RatingModel:
    """Build a model of ``kind`` (see :func:`model_classes`) sized for ``dataset`` (a
    ``Dataset``): ``BiasedMF`` by its id counts, the others by ``for_dataset``."""
    classes = model_classes()
    if kind not in classes:
        raise ValueError(f"unknown model kind {kind!r}; expected {', '.join(classes)}")
    if kind == "BiasedMF":
        ratings = dataset.interactions.rating
        if len(ratings) and "rating_mean" not in options:  # start at the data's mean, as
            options = {**options, "rating_mean": float(ratings.mean())}  # for_dataset does
        return classes[kind](dataset.num_users, dataset.num_items, **options)
    return classes[kind].for_dataset(dataset, **options)  # type: ignore[attr-defined]
