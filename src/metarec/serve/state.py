"""The service's in-memory state: the catalogue, encoded features and the online
recommender, kept in step with the event store.

Users and items get contiguous indices in database-id order, so the same database always
yields the same indices. Raw side features are encoded with the checkpoint's field
vocabularies (``model.config()`` ``user_specs`` / ``item_specs``; an unknown category
encodes as 0, the missing index). The per-user state is a function of the committed
events only (no meta-updates run inside the service), so replaying the events at start
rebuilds exactly the state the service had before it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from metarec.data.dataset import MISSING, FeatureTable, FieldSpec, Interactions, split_multi
from metarec.errors import CheckpointError, ConfigError
from metarec.learners.base import Learner
from metarec.learners.online import OnlineConfig, OnlineRecommender, UserState
from metarec.serve.store import EventStore, StoredEvent

log = logging.getLogger(__name__)

Side = Literal["users", "items"]

SERVABLE_MODELS = ("FeatureMLP", "FeatureMF")
"""The model kinds the service takes: both read side features, so a user or item
registered after training is scored from them."""


class GrowingTable:
    """A :class:`FeatureTable` that new rows can be appended to (capacity doubles), with
    raw feature dicts encoded by fixed field vocabularies."""

    def __init__(self, specs: list[FieldSpec], capacity: int = 1024) -> None:
        self.specs = specs
        self.num_rows = 0
        self._lookup = {s.name: {v: i + 1 for i, v in enumerate(s.vocab)} for s in specs}
        self._values: dict[str, torch.Tensor] = {}
        for spec in specs:
            if spec.kind == "numeric":
                self._values[spec.name] = torch.full((capacity,), math.nan)
            elif spec.kind == "multi":
                self._values[spec.name] = torch.zeros((capacity, 4), dtype=torch.long)
            else:
                self._values[spec.name] = torch.zeros(capacity, dtype=torch.long)
        self._capacity = capacity

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append ``rows`` (raw field -> value); returns the index of the first. Every row
        is encoded before the table changes."""
        encoded = [self.encode(row) for row in rows]
        first = self.num_rows
        needed = first + len(rows)
        if needed > self._capacity:
            capacity = max(needed, 2 * self._capacity)
            for name, values in self._values.items():
                grown = torch.full((capacity, *values.shape[1:]), math.nan) if (
                    values.is_floating_point()) else values.new_zeros(
                    (capacity, *values.shape[1:]))
                grown[: self.num_rows] = values[: self.num_rows]
                self._values[name] = grown
            self._capacity = capacity
        self.num_rows = needed
        for offset, row in enumerate(encoded):
            self._write(first + offset, row)
        return first

    def set_row(self, index: int, row: dict[str, Any]) -> None:
        """Encode ``row`` (raw field -> value) into row ``index``."""
        self._write(index, self.encode(row))

    def encode(self, row: dict[str, Any]) -> dict[str, float | int | list[int]]:
        """``row``'s codes per field: a number (NaN when missing or not a finite number),
        a category's code or the distinct codes of a multi-valued field's known members
        (0, missing, for what the vocabulary lacks)."""
        codes: dict[str, float | int | list[int]] = {}
        for spec in self.specs:
            value = row.get(spec.name)
            if spec.kind == "numeric":
                codes[spec.name] = _number(value)
            elif spec.kind == "categorical":
                codes[spec.name] = (MISSING if value is None
                                    else self._lookup[spec.name].get(str(value), MISSING))
            else:
                found = (self._lookup[spec.name].get(m, MISSING) for m in split_multi(value))
                codes[spec.name] = list(dict.fromkeys(c for c in found if c != MISSING))
        return codes

    def _write(self, index: int, codes: dict[str, float | int | list[int]]) -> None:
        for spec in self.specs:
            value, column = codes[spec.name], self._values[spec.name]
            if spec.kind != "multi":
                column[index] = value
                continue
            assert isinstance(value, list)
            if len(value) > column.shape[1]:
                wider = column.new_zeros((column.shape[0], len(value)))
                wider[:, : column.shape[1]] = column
                self._values[spec.name] = column = wider
            column[index] = 0
            column[index, : len(value)] = torch.tensor(value, dtype=torch.long)

    def table(self) -> FeatureTable:
        """The current rows as a :class:`FeatureTable` (views, no copy)."""
        return FeatureTable(list(self.specs), {k: v[: self.num_rows]
                                               for k, v in self._values.items()},
                            self.num_rows)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        return math.nan
    return number if math.isfinite(number) else math.nan


def decode_table(table: FeatureTable) -> list[dict[str, Any]]:
    """Raw feature dicts (JSON-able) of every row of an encoded table."""
    rows: list[dict[str, Any]] = [{} for _ in range(table.num_rows)]
    for spec in table.specs:
        values = table.values[spec.name].tolist()
        for row, value in zip(rows, values, strict=True):
            if spec.kind == "numeric":
                row[spec.name] = None if math.isnan(value) else value
            elif spec.kind == "categorical":
                row[spec.name] = spec.vocab[value - 1] if value > 0 else None
            else:
                row[spec.name] = [spec.vocab[v - 1] for v in value if v > 0]
    return rows


def _specs(raw: list[dict[str, Any]]) -> list[FieldSpec]:
    return [FieldSpec(s["name"], s["kind"], tuple(s.get("vocab", ()))) for s in raw]


@dataclass
class Catalogue:
    """Raw ids <-> indices of one side, raw features, and the encoded table."""

    index: dict[str, int] = field(default_factory=dict)
    raw: list[str] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    table: GrowingTable | None = None

    def add(self, raw_id: str, features: dict[str, Any]) -> int:
        assert self.table is not None
        position = self.table.append([features])
        self.index[raw_id] = position
        self.raw.append(raw_id)
        self.features.append(features)
        return position

    def update(self, raw_id: str, features: dict[str, Any]) -> None:
        assert self.table is not None
        position = self.index[raw_id]
        self.features[position] = features
        self.table.set_row(position, features)

    def reencode(self, specs: list[FieldSpec]) -> GrowingTable:
        table = GrowingTable(specs, capacity=max(1024, 2 * len(self.raw)))
        table.append(self.features)
        return table


class _Features:
    """The ``users`` / ``items`` tables the recommender reads (always current)."""

    def __init__(self, users: GrowingTable, items: GrowingTable) -> None:
        self._users, self._items = users, items

    @property
    def users(self) -> FeatureTable:
        return self._users.table()

    @property
    def items(self) -> FeatureTable:
        return self._items.table()


@dataclass
class Counters:
    events: int = 0
    adaptations: int = 0
    reloads: int = 0


class ServiceState:
    """Catalogue + online recommender, in step with an :class:`EventStore`."""

    def __init__(self, learner: Learner, store: EventStore, checkpoint: Path,
                 config: OnlineConfig | None = None) -> None:
        self.store = store
        self.checkpoint = checkpoint
        self.online_config = config or OnlineConfig(mode="meta", update_every=0)
        if self.online_config.update_every:
            raise ConfigError("the service does not run meta-updates (update_every must be "
                              "0): its state must be a function of the stored events")
        self.users, self.items = Catalogue(), Catalogue()
        self.event_counts = np.zeros(0, dtype=np.int64)
        """Stored events per item (:meth:`popularity` adds the training ratings)."""
        self._trained_counts = np.zeros(0, dtype=np.int64)
        self.counters = Counters()
        self.started = time.time()
        self._install(learner)

    # ---- model ----------------------------------------------------------------------
    def _install(self, learner: Learner, keep: dict[int, UserState] | None = None) -> None:
        model_config = learner.model.config()
        if model_config.get("kind") not in SERVABLE_MODELS:
            raise CheckpointError(
                f"the service needs a model over side features ({' or '.join(SERVABLE_MODELS)}"
                f": features, not ids alone, describe new users and items); got "
                f"{model_config.get('kind')!r}")
        if learner.config.memory_precision is not None:
            log.warning("%s's memory of trained users (memory_precision) acts only in batch "
                        "evaluation (metarec run / evaluate): the service adapts each user to "
                        "their events alone", learner.name)
        user_specs = _specs(model_config["user_specs"])
        item_specs = _specs(model_config["item_specs"])
        self.users.table = self.users.reencode(user_specs)
        self.items.table = self.items.reencode(item_specs)
        known = learner.known_
        # The catalogue is seeded from the run's data set in its order, so the training
        # ratings' item indices are catalogue indices (as the item-id embeddings assume).
        self._trained_counts = (np.bincount(known.item) if known is not None and len(known)
                                else np.zeros(0, dtype=np.int64))
        self.learner = learner
        self.recommender = OnlineRecommender(
            learner, _Features(self.users.table, self.items.table), self.online_config,
            users=keep)

    def reload(self, learner: Learner, checkpoint: Path) -> None:
        """Swap in another checkpoint; users' states are kept, adaptations redone, item
        offsets (if on) learned again from the events against the new model."""
        offsets = self.recommender.offsets
        self._install(learner, keep=self.recommender.users)
        self.recommender.carry_offsets(offsets)
        self.recommender.warm_up()
        self.checkpoint = checkpoint
        self.counters.reloads += 1

    # ---- catalogue ------------------------------------------------------------------
    def load_catalogue(self) -> None:
        """Read every user and item from the store, then replay every event."""
        for _, raw, features in self.store.users():
            self.users.add(raw, features)
        for _, raw, features in self.store.items():
            self.items.add(raw, features)
        self._grow_popularity()
        chunk: list[StoredEvent] = []
        for stored in self.store.iter_events():
            chunk.append(stored)
            if len(chunk) == 10_000:
                self.learn(chunk)
                chunk = []
        self.learn(chunk)
        self.recommender.warm_up()

    def seed(self, users: list[tuple[str, dict[str, Any]]],
             items: list[tuple[str, dict[str, Any]]]) -> None:
        """Store a first catalogue (only into an empty store)."""
        self.store.bulk_insert(users, items)

    def _grow_popularity(self) -> None:
        grown = np.zeros(len(self.items.raw), dtype=np.int64)
        grown[: len(self.event_counts)] = self.event_counts
        self.event_counts = grown

    def popularity(self) -> np.ndarray:
        """Ratings per catalogue item: the checkpoint's training ratings plus every stored
        event (what ``popularity`` recommendations rank by)."""
        counts = self.event_counts.copy()
        n = min(len(counts), len(self._trained_counts))
        counts[:n] += self._trained_counts[:n]
        return counts

    def commit_entities(self, side: Side, features: dict[str, dict[str, Any]]
                        ) -> dict[str, bool]:
        """Store users or items (``side``; raw id -> features); returns raw id ->
        created. Encoding cannot fail (a value the checkpoint cannot encode is missing),
        so whatever is stored, :meth:`apply_entities` takes. Thread-safe: touches only
        the store."""
        upsert = self.store.upsert_users if side == "users" else self.store.upsert_items
        return {raw: created for raw, (_, created) in upsert(dict(features)).items()}

    def apply_entities(self, side: Side, features: dict[str, dict[str, Any]]) -> None:
        """Index committed users or items. A changed user is re-adapted at their next
        request; a changed item's cached vectors are rebuilt and the users whose kept
        support holds it are re-adapted, as a restart would; a new item is recommendable
        at once."""
        catalogue = self.users if side == "users" else self.items
        for raw, values in features.items():
            if raw not in catalogue.index:
                catalogue.add(raw, values)
                continue
            catalogue.update(raw, values)
            if side == "users":
                self.recommender.forget_adaptation(catalogue.index[raw])
            else:
                self.recommender.item_changed(catalogue.index[raw])
        self._grow_popularity()

    # ---- events ---------------------------------------------------------------------
    def learn(self, stored: list[StoredEvent]) -> None:
        """Apply committed events to the in-memory state (in commit order)."""
        if not stored:
            return
        for event in stored:
            if event.user not in self.users.index:
                self.users.add(event.user, {})
            if event.item not in self.items.index:
                self.items.add(event.item, {})
        self._grow_popularity()
        users = np.array([self.users.index[e.user] for e in stored], dtype=np.int64)
        items = np.array([self.items.index[e.item] for e in stored], dtype=np.int64)
        interactions = Interactions(users, items,
                                    np.array([e.rating for e in stored], dtype=np.float32),
                                    np.array([e.timestamp for e in stored], dtype=np.float64))
        np.add.at(self.event_counts, items, 1)
        self.recommender.learn(interactions)
        self.counters.events += len(stored)

    # ---- reads ----------------------------------------------------------------------
    def recommend(self, raw_user: str, k: int, exclude_seen: bool
                  ) -> tuple[list[dict[str, Any]], str]:
        """Top-``k`` items for ``raw_user`` and how they were made: ``adapted`` (the user
        has events), ``features`` (registered with features, no events) or
        ``popularity`` (nothing known)."""
        index = self.users.index.get(raw_user)
        state = None if index is None else self.recommender.users.get(index)
        has_features = index is not None and any(
            v not in (None, [], "") for v in self.users.features[index].values())
        if state is None and not has_features:
            counts = self.popularity()
            order = np.argsort(-counts, kind="stable")[:k]
            return ([{"item": self.items.raw[i], "score": float(counts[i])}
                     for i in order], "popularity")
        before = self.recommender.adaptations
        top = self.recommender.recommend(index, k, exclude_seen)  # type: ignore[arg-type]
        self.counters.adaptations += self.recommender.adaptations - before
        kind = "adapted" if state is not None else "features"
        return [{"item": self.items.raw[i], "score": s} for i, s in top], kind

    def user_info(self, raw_user: str) -> dict[str, Any]:
        """Events count, kept support size and last adaptation time of ``raw_user``."""
        index = self.users.index.get(raw_user)
        state = None if index is None else self.recommender.users.get(index)
        last = None if index is None else self.recommender.last_adapted.get(index)
        return {"user": raw_user, "known": index is not None,
                "features": None if index is None else self.users.features[index],
                "events": 0 if state is None else state.num_events,
                "support_size": 0 if state is None else len(state.items),
                "last_event_time": None if state is None or math.isnan(state.last_time)
                else state.last_time,
                "last_adaptation": last}

    def snapshot(self) -> dict[str, Any]:
        """Every user's kept state by raw id (for comparing before/after a restart)."""
        return {self.users.raw[u]: s.snapshot() for u, s in self.recommender.users.items()}

    def describe(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint.name, "learner": self.learner.name,
                "users": len(self.users.raw), "items": len(self.items.raw),
                "events": self.counters.events, "uptime_s": time.time() - self.started,
                "item_shrinkage": self.online_config.item_shrinkage}


def load_learner(checkpoint: Path) -> Learner:
    """Load a saved learner (features are attached by the service) on the CPU, wherever
    it was trained: one user's adaptation is a few hundred tiny operations, faster on the
    CPU than as GPU kernel launches (see README, "On a GPU")."""
    return Learner.load(checkpoint, device="cpu")
