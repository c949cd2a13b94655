"""Prequential ("predict, then learn") evaluation over a time-ordered event stream.

Events are visited in time order in blocks of ``block_size``. For each block the model
first predicts every event of the block (and, for ranking, each sampled user's next
items), and only then learns from the block. So no event is used before it is predicted;
with ``block_size = 1`` this is the strict event-by-event protocol, larger blocks are more
conservative still (and faster). Events before ``start`` are a warm-up: learned, never
scored.

Reported: MAE and RMSE over all scored events and over sliding windows of ``window``
events (the error-over-time curve), and nDCG@k of each sampled user's next items: at
every ``ndcg_every``-th event of a user, that event and the user's following
``next_items - 1`` events are ranked by the model's current predictions and scored
against their true ratings (:func:`~metarec.evaluation.metrics.ndcg_at_k`).

:func:`check_no_leak` tests the guarantee from outside: changing the rating of an event
must not change any prediction made up to and including that event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from metarec.data.dataset import Interactions
from metarec.errors import ConfigError, MetarecError
from metarec.evaluation.metrics import mae, ndcg_at_k, rmse

log = logging.getLogger(__name__)


class StreamModel(Protocol):
    """What prequential evaluation drives: predictions for pairs, then learning."""

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...

    def learn(self, events: Interactions) -> None: ...


class LeakageError(MetarecError):
    """A model's predictions depend on events it had not yet been allowed to learn."""


@dataclass
class PrequentialConfig:
    """``block_size``: events predicted together before any of them is learned;
    ``start``: warm-up events (learned, not scored); ``window``: events per point of the
    error curve; ``ndcg_k``, ``ndcg_every``, ``next_items``: the next-items ranking (see
    the module docstring); ``max_events``: stop after this many events (None = all)."""

    block_size: int = 1
    start: int = 0
    window: int = 1000
    ndcg_k: int = 10
    ndcg_every: int = 10
    next_items: int = 10
    max_events: int | None = None


@dataclass
class PrequentialResult:
    """Per-event predictions (``pred`` aligned with ``events``, NaN for warm-up events),
    the next-items ranking rows, and the wall time."""

    events: Interactions
    pred: np.ndarray
    scored: np.ndarray
    ranking: pd.DataFrame
    seconds: float
    ndcg_k: int

    def curve(self, window: int) -> pd.DataFrame:
        """MAE and RMSE over consecutive windows of ``window`` scored events:
        columns ``end`` (stream position of the window's last event), ``mae``, ``rmse``."""
        positions = np.flatnonzero(self.scored)
        rows = []
        for start in range(0, len(positions), window):
            chosen = positions[start:start + window]
            true = self.events.rating[chosen].astype(np.float64)
            rows.append({"end": int(chosen[-1]), "mae": mae(true, self.pred[chosen]),
                         "rmse": rmse(true, self.pred[chosen]), "events": len(chosen)})
        return pd.DataFrame(rows, columns=["end", "mae", "rmse", "events"])

    def summary(self) -> dict[str, Any]:
        """``events``, ``mae``, ``rmse``, ``ndcg@k``, ``ranked_lists``, ``seconds``,
        ``events_per_s``."""
        true = self.events.rating[self.scored].astype(np.float64)
        pred = self.pred[self.scored]
        rank = self.ranking
        ndcg = (ndcg_at_k(rank["query"].to_numpy(), rank["true"].to_numpy(),
                          rank["pred"].to_numpy(), self.ndcg_k) if len(rank) else float("nan"))
        n = int(self.scored.sum())
        return {"events": n, "mae": mae(true, pred), "rmse": rmse(true, pred),
                f"ndcg@{self.ndcg_k}": ndcg,
                "ranked_lists": int(rank["query"].nunique()) if len(rank) else 0,
                "seconds": self.seconds, "events_per_s": n / max(self.seconds, 1e-9)}


def time_order(events: Interactions) -> Interactions:
    """``events`` sorted by timestamp (stable: ties keep their order; NaN last)."""
    key = np.where(np.isnan(events.timestamp), np.inf, events.timestamp)
    return events.subset(np.argsort(key, kind="stable"))


def run_prequential(model: StreamModel, events: Interactions,
                    config: PrequentialConfig | None = None, *,
                    progress: Callable[[int, int], None] | None = None) -> PrequentialResult:
    """Run the prequential protocol of the module docstring over ``events`` (taken in the
    given order: sort them with :func:`time_order` first). ``progress(done, total)`` is
    called after every block."""
    cfg = config or PrequentialConfig()
    if cfg.block_size < 1 or cfg.next_items < 1 or cfg.ndcg_every < 1:
        raise ConfigError(f"block_size, next_items and ndcg_every must be >= 1, got "
                          f"{cfg.block_size}, {cfg.next_items} and {cfg.ndcg_every}")
    total = len(events) if cfg.max_events is None else min(len(events), cfg.max_events)
    events = events.subset(np.arange(total))
    pred = np.full(total, np.nan)
    scored = np.zeros(total, dtype=bool)
    begin = time.perf_counter()
    if cfg.start:
        model.learn(events.subset(np.arange(min(cfg.start, total))))
    # Each event's position among its user's events, and the user's following events.
    by_user = pd.Series(np.arange(total)).groupby(events.user)
    ordinal = by_user.cumcount().to_numpy()
    user_rows = {u: rows.to_numpy() for u, rows in by_user}
    ranking: list[pd.DataFrame] = []
    for block_start in range(min(cfg.start, total), total, cfg.block_size):
        block = np.arange(block_start, min(block_start + cfg.block_size, total))
        pred[block] = model.predict(events.user[block], events.item[block])
        scored[block] = True
        ranking.extend(_next_items(model, events, block, ordinal, user_rows, cfg))
        model.learn(events.subset(block))
        if progress is not None:
            progress(int(block[-1]) + 1, total)
    rank = (pd.concat(ranking, ignore_index=True) if ranking
            else pd.DataFrame(columns=["query", "user", "item", "true", "pred"]))
    return PrequentialResult(events, pred, scored, rank, time.perf_counter() - begin,
                             cfg.ndcg_k)


def _next_items(model: StreamModel, events: Interactions, block: np.ndarray,
                ordinal: np.ndarray, user_rows: dict[int, np.ndarray],
                cfg: PrequentialConfig) -> list[pd.DataFrame]:
    chosen = block[ordinal[block] % cfg.ndcg_every == 0]
    frames = []
    for position in chosen:
        rows = user_rows[int(events.user[position])]
        first = int(ordinal[position])
        following = rows[first:first + cfg.next_items]
        if len(following) < 2:
            continue
        scores = model.predict(events.user[following], events.item[following])
        frames.append(pd.DataFrame({"query": int(position), "user": events.user[following],
                                    "item": events.item[following],
                                    "true": events.rating[following].astype(np.float64),
                                    "pred": scores}))
    return frames


def check_no_leak(make_model: Callable[[Interactions], StreamModel], events: Interactions,
                  config: PrequentialConfig | None = None, *, probes: int = 3,
                  seed: int = 0, atol: float = 1e-9) -> None:
    """Raise :class:`LeakageError` if a prediction depends on an event not yet learned.

    For each of ``probes`` random scored positions j, the stream is run twice through a
    fresh ``make_model(stream)`` (the factory sees the whole stream, as a careless
    pipeline could): once as is and once with event j's rating changed. Every prediction
    at positions <= j must be equal in both runs.
    """
    cfg = config or PrequentialConfig()
    total = len(events) if cfg.max_events is None else min(len(events), cfg.max_events)
    if total <= cfg.start:
        raise ValueError("no scored event to probe: the stream is shorter than start")
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(np.arange(cfg.start, total),
                                   size=min(probes, total - cfg.start), replace=False))
    for j in positions.tolist():
        stream = events.subset(np.arange(j + 1))
        changed = Interactions(stream.user, stream.item, stream.rating.copy(),
                               stream.timestamp)
        old = float(changed.rating[j])
        changed.rating[j] = old + 2.0 if old < 3.0 else old - 2.0
        base = run_prequential(make_model(stream), stream, cfg).pred
        probe = run_prequential(make_model(changed), changed, cfg).pred
        # atol alone: numpy's default rtol (1e-5) would pass a change of up to 1e-5 of
        # the prediction, e.g. a mean over a long stream that the rating moved
        differ = ~np.isclose(base, probe, rtol=0.0, atol=atol, equal_nan=True)
        if differ.any():
            first = int(np.flatnonzero(differ)[0])
            raise LeakageError(f"prediction of event {first} changed when the rating of "
                               f"event {j} changed: the model saw an event before "
                               "predicting it")


def data_of_run(run_dir: str | Path) -> tuple[str, dict[str, Any], str | None] | None:
    """(data set name, reader options, ``data_dir`` or None) named in the ``config.toml``
    (a ``metarec run``, ``distill`` or ``transfer`` folder) or ``train_config.toml`` (a
    ``metarec train`` folder) of ``run_dir`` or of one of its two parent folders (for a
    checkpoint folder inside a run), if any. A transfer between generated domains names
    no data set that can be loaded again: a ConfigError asks for one."""
    from metarec.config import config_from_dict, read_config_values

    for folder in (Path(run_dir), *Path(run_dir).parents[:2]):
        for path in (folder / "config.toml", folder / "train_config.toml"):
            if path.is_file():
                values = read_config_values(path)
                values.pop("distill", None)  # a distillation's own settings: [data] holds
                transfer = values.pop("transfer", None)  # ... and so does a transfer's
                if isinstance(transfer, dict) and transfer.get("source", "domains") == "domains":
                    raise ConfigError(f"{path}: the target data set of this transfer run is "
                                      "generated from its [transfer] settings: name the data "
                                      "set to stream with --dataset")
                if "dataset" in values.get("data", {}):
                    data = config_from_dict(values, str(path)).data
                    return data.dataset, dict(data.options), data.data_dir
    return None


def run_prequential_modes(checkpoint: str | Path, dataset: str | None = None, *,
                          data_dir: str | Path | None = None, learner: str | None = None,
                          modes: Sequence[str] = ("static", "sgd", "meta"),
                          start: float = 0.5, block_size: int = 1, update_every: int = 1000,
                          max_events: int | None = None, window: int = 1000,
                          online: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Prequential runs of a saved learner over ``dataset`` in time order, one per mode
    of :class:`~metarec.learners.online.OnlineRecommender`, each from a fresh copy of the
    checkpoint (chosen by :func:`~metarec.learners.base.find_saved_learner`). The first
    ``start`` fraction of the stream is warm-up; the checkpoint should have been trained
    on that part only, or the scores are optimistic. ``dataset`` None: the one named in
    the run's config.toml (with its options, and its ``data_dir`` unless ``data_dir`` is
    given), else ``synthetic``.
    Returns one record per mode: the summary, the settings and the error ``curve``."""
    from metarec.data.registry import load_dataset
    from metarec.learners.base import Learner, find_saved_learner
    from metarec.learners.online import OnlineConfig, OnlineRecommender

    if not 0 <= start < 1:
        raise ConfigError(f"start must be a fraction of the stream in [0, 1), got {start}")
    if max_events is not None and max_events < 1:
        raise ConfigError(f"max_events must be >= 1 (or unset: the whole stream), got "
                          f"{max_events}")
    folder = find_saved_learner(checkpoint, learner)
    name, options = dataset or "synthetic", {}
    if dataset is None and (named := data_of_run(checkpoint)) is not None:
        name, options, run_data_dir = named
        data_dir = run_data_dir if data_dir is None else data_dir
    data = load_dataset(name, data_dir=None if data_dir is None else Path(data_dir), **options)
    untimed = np.isnan(data.interactions.timestamp)
    if untimed.any():  # no place in a time order: leaving them last would score them
        log.warning("%s: %d of %d ratings have no timestamp and are left out of the "
                    "time-ordered stream", data.name, int(untimed.sum()), len(untimed))
    events = time_order(data.interactions.subset(~untimed))
    if not len(events):
        raise ConfigError(f"{data.name}: no rating has a timestamp: there is no time order "
                          "to stream")
    if max_events is not None:
        events = events.subset(np.arange(min(max_events, len(events))))
    config = PrequentialConfig(block_size=block_size, start=int(start * len(events)),
                               window=window)
    records = []
    for mode in modes:
        model = Learner.load(folder, features=data)
        every = update_every if mode == "meta" else 0
        settings = OnlineConfig(mode=mode, update_every=every, **(online or {}))  # type: ignore[arg-type]
        result = run_prequential(OnlineRecommender(model, data, settings), events, config)
        records.append({"mode": mode, "learner": model.name, "dataset": data.name,
                        "block_size": block_size, "start": config.start,
                        "update_every": settings.update_every,
                        "item_shrinkage": settings.item_shrinkage, **result.summary(),
                        "curve": result.curve(window).to_dict("records")})
    return records
