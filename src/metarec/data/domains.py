"""Two generated domains that share part of their latent structure, for transfer learning.

:func:`generate_domains` draws ONE generated world (:func:`metarec.data.synthetic.generate`)
and splits its users into a source and a target population (disjoint users, the same item
catalogue). Both domains then share every latent vector; what makes them differ is how the
observed categories map onto that structure: in the target, a fraction
``1 - shared_share`` of each categorical / multi-valued field's categories is relabelled
(a cyclic shift among those categories), so e.g. the target's "Comedy" behaves like the
source's "Crime". A model that transfers embeddings by category value therefore gets the
right embedding for the shared categories and a misleading one for the others:
``shared_share = 1`` is the same world with new users, ``shared_share = 0`` keeps only the
generic structure (rating scale, biases, how strongly features matter).

This uses ``synthetic.generate`` unchanged. (A finer control, fresh idiosyncratic draws
with shared category vectors, needs a ``feature_seed`` hook in ``synthetic.py``.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from metarec.data.dataset import Dataset, FeatureTable, IdMap
from metarec.data.synthetic import SyntheticConfig, generate
from metarec.errors import ConfigError


def generate_domains(config: SyntheticConfig | None = None, shared_share: float = 0.5,
                     seed: int = 0, *, target_fraction: float = 0.4) -> tuple[Dataset, Dataset]:
    """A (source, target) pair of data sets (see the module docstring).

    ``config`` sizes the whole world (both populations together); ``target_fraction`` of
    its users, drawn with ``seed``, form the target. ``shared_share`` in ``[0, 1]`` is the
    fraction of each field's categories whose meaning the domains share; which categories
    are relabelled is drawn with ``seed``. Numeric fields and item ids are shared.
    """
    if not 0.0 <= shared_share <= 1.0:
        raise ConfigError(f"shared_share must be in [0, 1], got {shared_share}")
    if not 0.0 < target_fraction < 1.0:
        raise ConfigError(f"target_fraction must be in (0, 1), got {target_fraction}")
    cfg = config or SyntheticConfig()
    world = generate(cfg)
    rng = np.random.default_rng([seed, 7])
    users = rng.permutation(world.num_users)
    n_target = int(round(target_fraction * world.num_users))
    target_users, source_users = np.sort(users[:n_target]), np.sort(users[n_target:])
    source = _user_subset(world, source_users, "synthetic-source")
    target = _user_subset(world, target_users, "synthetic-target")
    target = replace(target, users=_relabel(target.users, shared_share, rng),
                     items=_relabel(target.items, shared_share, rng),
                     notes=[*target.notes, f"target domain: shared_share={shared_share}, "
                            f"seed={seed}"])
    return source, target


def relabelling(cardinality: int, shared_share: float, rng: np.random.Generator
                ) -> np.ndarray:
    """Code map ``new = map[old]`` over ``0..cardinality-1`` (0 = missing stays 0): a
    random ``round((1 - shared_share) * (cardinality - 1))`` of the categories are shifted
    cyclically among themselves (a derangement when there are at least two)."""
    mapping = np.arange(cardinality)
    count = int(round((1.0 - shared_share) * (cardinality - 1)))
    if count >= 2:
        moved = 1 + rng.choice(cardinality - 1, size=count, replace=False)
        mapping[moved] = np.roll(moved, 1)
    return mapping


def _relabel(table: FeatureTable, shared_share: float, rng: np.random.Generator
             ) -> FeatureTable:
    values = dict(table.values)
    for spec in table.specs:
        if spec.kind == "numeric":
            continue
        mapping = torch.from_numpy(relabelling(spec.cardinality, shared_share, rng))
        values[spec.name] = mapping[values[spec.name]]
    return FeatureTable(specs=list(table.specs), values=values, num_rows=table.num_rows)


def _user_subset(world: Dataset, users: np.ndarray, name: str) -> Dataset:
    """The data set restricted to ``users`` (re-indexed 0..n-1), items unchanged."""
    new_index = np.full(world.num_users, -1, dtype=np.int64)
    new_index[users] = np.arange(len(users))
    inter = world.interactions
    rows = inter.subset(new_index[inter.user] >= 0)
    rows.user = new_index[rows.user]
    take = torch.from_numpy(users)
    table = FeatureTable(specs=list(world.users.specs),
                         values={k: v[take] for k, v in world.users.values.items()},
                         num_rows=len(users))
    return Dataset(name=name, interactions=rows, user_ids=IdMap(world.user_ids.raw_of(users)),
                   item_ids=world.item_ids, users=table, items=world.items,
                   rating_range=world.rating_range, notes=list(world.notes))
