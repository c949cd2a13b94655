"""The one in-memory representation of a recommendation data set.

A :class:`Dataset` holds an :class:`Interactions` table (user, item, rating, optional
timestamp) over contiguous indices, the :class:`IdMap` of each side that maps raw ids
(strings or ints, as the file had them) to those indices and back, and one
:class:`FeatureTable` per side with typed, index-encoded side features. Every reader
ends in :func:`build_dataset`, so encoding, duplicate handling and id mapping live here
and only here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch

from metarec.errors import DataError

log = logging.getLogger(__name__)

FieldKind = Literal["categorical", "multi", "numeric"]
Fields = dict[str, torch.Tensor]
"""Feature tensors of a batch of entities, one entry per field plus ``"id"``."""

MISSING = 0
"""Index of the missing / unknown category in every categorical vocabulary."""


class IdMap:
    """Bijection between raw ids (as found in the files) and contiguous indices 0..n-1."""

    def __init__(self, raw_ids: Iterable[object]) -> None:
        index = pd.Index(list(raw_ids) if not isinstance(raw_ids, pd.Index) else raw_ids)
        if index.has_duplicates:
            raise ValueError("IdMap: raw ids must be unique")
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, raw_id: object) -> bool:
        return raw_id in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    @property
    def raw(self) -> pd.Index:
        """The raw ids, position i holding the raw id of index i."""
        return self._index

    def index_of(self, raw_ids: Sequence[object] | np.ndarray | pd.Series) -> np.ndarray:
        """Indices of ``raw_ids``; raises ``KeyError`` naming the first unknown id."""
        positions = self._index.get_indexer(pd.Index(raw_ids))
        if (positions < 0).any():
            unknown = pd.Index(raw_ids)[positions < 0].tolist()[0]
            raise KeyError(f"unknown id {unknown!r}")
        return positions.astype(np.int64)

    def raw_of(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Raw ids of ``indices``."""
        return self._index.to_numpy()[np.asarray(indices, dtype=np.int64)]

    def extended(self, raw_ids: Iterable[object]) -> IdMap:
        """A new map with ``raw_ids`` not yet present appended at the end."""
        new = pd.Index(list(raw_ids)).difference(self._index, sort=False).unique()
        return IdMap(self._index.append(new)) if len(new) else self


@dataclass(frozen=True)
class FieldSpec:
    """One side-feature field.

    ``categorical``: one category per row (gender, age group, occupation, zip, MPAA rate);
    ``multi``: a set of categories per row (genres, directors, actors, writers);
    ``numeric``: one float per row (release year), NaN when missing.
    For the first two, category ``vocab[i]`` is encoded as index ``i + 1``; 0 means
    missing or unknown, so that ``nn.Embedding(padding_idx=0)`` ignores it.
    """

    name: str
    kind: FieldKind
    vocab: tuple[str, ...] = ()

    @property
    def cardinality(self) -> int:
        """Number of embedding rows the field needs (vocabulary + the missing index)."""
        return len(self.vocab) + 1


@dataclass
class FeatureTable:
    """Index-encoded side features of one side (users or items); row i is entity i.

    ``values[name]`` is ``long [N]`` for categorical fields, ``long [N, L]`` padded with 0
    for multi-valued fields (L = the longest set), and ``float [N]`` for numeric ones.
    """

    specs: list[FieldSpec]
    values: dict[str, torch.Tensor]
    num_rows: int

    def spec(self, name: str) -> FieldSpec:
        """The spec of field ``name``."""
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(f"no field {name!r}; fields are {[s.name for s in self.specs]}")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def take(self, index: torch.Tensor, device: torch.device | str | None = None) -> Fields:
        """Feature tensors of the rows in ``index`` (any shape); adds ``"id"`` = index.
        With ``device``, the tensors are moved there (the table stays where it is)."""
        out: Fields = {"id": index}
        for name, tensor in self.values.items():
            out[name] = tensor[index]
        if device is not None:
            out = {name: tensor.to(device) for name, tensor in out.items()}
        return out

    def known_codes_only(self, rows: np.ndarray) -> FeatureTable:
        """A copy in which every categorical or multi-valued code that none of ``rows``
        has reads as missing (0); numeric fields unchanged. A model then treats a code it
        never trained on (a new director, a new zip code) as absent instead of looking up
        the row's untrained initial values."""
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        values = dict(self.values)
        for spec in self.specs:
            if spec.kind == "numeric":
                continue
            codes = self.values[spec.name]
            known = torch.zeros(spec.cardinality, dtype=torch.bool)
            known[codes[rows].reshape(-1)] = True
            known[MISSING] = True
            values[spec.name] = torch.where(known[codes], codes, torch.zeros_like(codes))
        return FeatureTable(specs=self.specs, values=values, num_rows=self.num_rows)

    def numeric_within(self, rows: np.ndarray) -> FeatureTable:
        """A copy in which every numeric value is clamped to the range that ``rows`` span
        (missing values stay missing; other fields unchanged). A model then reads a value
        beyond what it trained on (a film from a later year) as the nearest one it knows
        instead of extrapolating its linear projection."""
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        values = dict(self.values)
        for spec in self.specs:
            if spec.kind != "numeric":
                continue
            column = self.values[spec.name]
            seen = column[rows]
            seen = seen[torch.isfinite(seen)]
            if seen.numel():
                values[spec.name] = column.clamp(float(seen.min()), float(seen.max()))
        return FeatureTable(specs=self.specs, values=values, num_rows=self.num_rows)

    @staticmethod
    def empty(num_rows: int) -> FeatureTable:
        """A table with no fields (only ids)."""
        return FeatureTable(specs=[], values={}, num_rows=num_rows)

    @staticmethod
    def encode(
        frame: pd.DataFrame | None,
        ids: IdMap,
        kinds: Mapping[str, FieldKind],
        *,
        multi_sep: str = "|",
        vocabs: Mapping[str, Sequence[str]] | None = None,
    ) -> FeatureTable:
        """Encode ``frame`` (indexed by raw id) into a table aligned with ``ids``.

        Rows of ``ids`` absent from ``frame`` get missing values (allowed: a user may rate
        without a profile). ``kinds`` names the fields to keep and their kind. Multi-valued
        cells are either lists or strings split on ``multi_sep``. ``vocabs`` fixes a
        field's vocabulary (unknown categories then encode as missing).
        """
        n = len(ids)
        specs: list[FieldSpec] = []
        values: dict[str, torch.Tensor] = {}
        if frame is None or not kinds:
            return FeatureTable.empty(n)
        positions = ids.raw.get_indexer(frame.index)
        keep = positions >= 0
        frame, positions = frame[keep], positions[keep]
        for name, kind in kinds.items():
            if name == "id":
                raise DataError("a feature field may not be named 'id' (the key of the "
                                "user or item index): rename it")
            if name not in frame.columns:
                raise DataError(f"feature field {name!r} not in columns {list(frame.columns)}")
            column = frame[name]
            given = None if vocabs is None else vocabs.get(name)
            if kind == "numeric":
                numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
                full = np.full(n, np.nan, dtype=np.float32)
                with np.errstate(over="ignore"):  # past float32's range: inf, then missing
                    full[positions] = numeric
                full[~np.isfinite(full)] = np.nan
                specs.append(FieldSpec(name, kind))
                values[name] = torch.from_numpy(full)
            elif kind == "categorical":
                cells = column.astype("string")
                vocab = tuple(given) if given is not None else _sorted_vocab(cells.dropna())
                lookup = {v: i + 1 for i, v in enumerate(vocab)}
                codes = np.zeros(n, dtype=np.int64)
                codes[positions] = [lookup.get(v, MISSING) if v is not pd.NA else MISSING
                                    for v in cells]
                specs.append(FieldSpec(name, kind, vocab))
                values[name] = torch.from_numpy(codes)
            elif kind == "multi":
                lists = [split_multi(v, multi_sep) for v in column]
                vocab = (tuple(given) if given is not None
                         else _sorted_vocab(v for cell in lists for v in cell))
                lookup = {v: i + 1 for i, v in enumerate(vocab)}
                width = max((len(c) for c in lists), default=0) or 1
                codes = np.zeros((n, width), dtype=np.int64)
                for row, cell in zip(positions, lists, strict=True):
                    encoded = [lookup[v] for v in cell if v in lookup]
                    codes[row, : len(encoded)] = encoded
                specs.append(FieldSpec(name, kind, vocab))
                values[name] = torch.from_numpy(codes)
            else:
                raise ValueError(f"unknown field kind {kind!r}")
        return FeatureTable(specs=specs, values=values, num_rows=n)


def _sorted_vocab(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({str(v) for v in values if str(v) != ""}))


def split_multi(cell: object, sep: str = "|") -> list[str]:
    """The distinct, stripped, non-empty members of a multi-valued cell: a list, or a
    string of members joined by ``sep``; none for a missing cell."""
    if cell is None or cell is pd.NA or (isinstance(cell, float) and np.isnan(cell)):
        return []
    if isinstance(cell, (list, tuple, np.ndarray)):
        items = [str(v).strip() for v in cell]
    else:
        items = [v.strip() for v in str(cell).split(sep)]
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


@dataclass
class Interactions:
    """Ratings over contiguous indices. ``timestamp`` is seconds since the epoch, NaN when
    the file had none (missing is not an error and never drops the rating)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The rows where ``mask`` is true (or the rows listed, for an index array)."""
        return Interactions(self.user[mask], self.item[mask], self.rating[mask],
                            self.timestamp[mask])

    def to_frame(self) -> pd.DataFrame:
        """A ``user, item, rating, timestamp`` DataFrame over indices."""
        return pd.DataFrame({"user": self.user, "item": self.item, "rating": self.rating,
                             "timestamp": self.timestamp})


@dataclass
class Dataset:
    """A complete data set: interactions, id maps and side features of both sides."""

    name: str
    interactions: Interactions
    user_ids: IdMap
    item_ids: IdMap
    users: FeatureTable
    items: FeatureTable
    rating_range: tuple[float, float] = (1.0, 5.0)
    notes: list[str] = field(default_factory=list)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def summary(self) -> dict[str, object]:
        """Counts a person wants to see first."""
        inter = self.interactions
        return {
            "dataset": self.name,
            "users": self.num_users,
            "items": self.num_items,
            "ratings": len(inter),
            "rated_users": int(np.unique(inter.user).size),
            "rated_items": int(np.unique(inter.item).size),
            "mean_rating": float(inter.rating.mean()) if len(inter) else float("nan"),
            "with_timestamp": int(np.isfinite(inter.timestamp).sum()),
            "user_fields": self.users.names,
            "item_fields": self.items.names,
        }


def build_dataset(
    name: str,
    ratings: pd.DataFrame,
    *,
    users: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    user_fields: Mapping[str, FieldKind] | None = None,
    item_fields: Mapping[str, FieldKind] | None = None,
    multi_sep: str = "|",
    rating_range: tuple[float, float] = (1.0, 5.0),
    source: str | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from raw frames; the last step of every reader.

    ``ratings`` has columns ``user, item, rating`` and optionally ``timestamp`` (seconds,
    NaN = missing), in file order. ``users`` / ``items`` are indexed by raw id. Duplicate
    (user, item) pairs keep the latest rating (by timestamp, then file order) and the
    number dropped is logged and recorded in ``notes``. Ids that appear only in a feature
    table are kept (an item nobody rated yet is still recommendable).
    """
    missing = [c for c in ("user", "item", "rating") if c not in ratings.columns]
    if missing:
        raise DataError(f"ratings table lacks column(s) {missing}", path=source)
    frame = ratings.reset_index(drop=True)
    if "timestamp" not in frame.columns:
        frame = frame.assign(timestamp=np.nan)
    notes: list[str] = []
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].fillna(-np.inf).to_numpy()))
    frame = frame.iloc[order]
    dup = frame.duplicated(subset=["user", "item"], keep="last")
    if dup.any():
        count = int(dup.sum())
        note = f"{count} duplicate (user, item) rating(s): kept the latest of each"
        log.warning("%s: %s", name, note)
        notes.append(note)
        frame = frame[~dup]
    frame = frame.sort_index(kind="stable")

    user_ids = IdMap(pd.unique(frame["user"]))
    item_ids = IdMap(pd.unique(frame["item"]))
    if users is not None:
        user_ids = user_ids.extended(users.index)
    if items is not None:
        item_ids = item_ids.extended(items.index)
    interactions = Interactions(
        user=user_ids.index_of(frame["user"].to_numpy()),
        item=item_ids.index_of(frame["item"].to_numpy()),
        rating=frame["rating"].to_numpy(dtype=np.float32),
        timestamp=frame["timestamp"].to_numpy(dtype=np.float64),
    )
    return Dataset(
        name=name,
        interactions=interactions,
        user_ids=user_ids,
        item_ids=item_ids,
        users=FeatureTable.encode(users, user_ids, user_fields or {}, multi_sep=multi_sep),
        items=FeatureTable.encode(items, item_ids, item_fields or {}, multi_sep=multi_sep),
        rating_range=rating_range,
        notes=notes,
    )
