"""One experiment = one :class:`~metarec.config.RunConfig`: load data, split it into
cold-start scenarios, train learners and baselines for each seed, evaluate every scenario
and a cold-start curve, and write a run folder. ``metarec run`` and ``metarec evaluate``
are thin wrappers around :func:`run_experiment` and :func:`evaluate_run`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarec.config import ModelConfig, RunConfig, load_config, reader_options
from metarec.data.dataset import Dataset, Interactions
from metarec.data.splits import SCENARIOS, ColdStartSplit, split_dataset
from metarec.errors import CheckpointError, ConfigError
from metarec.evaluation.baselines import Biases, GlobalMean, Popularity, tuned_mf
from metarec.evaluation.item_knn import ItemKNN
from metarec.evaluation.metrics import compute_metrics, rating_levels
from metarec.evaluation.protocol import aggregate_seeds, predictions_frame
from metarec.evaluation.report import (
    bar_chart,
    line_chart,
    replaced_folder,
    results_document,
    write_run_folder,
)
from metarec.learners.base import Learner
from metarec.learners.config import LearnerConfig
from metarec.learners.registry import learner_class
from metarec.learners.ridge import fold_in
from metarec.models.base import build_model
from metarec.tasks.taskset import TaskSet

Predictor = Callable[[TaskSet], np.ndarray]
Events = Callable[[str, dict[str, Any]], None]
"""Progress events: ``(kind, payload)`` with kinds ``stage``, ``epoch``, ``done``."""

BASELINES = ("global-mean", "biases", "popularity", "biased-mf", "pretrain", "finetune",
             "foldin", "item-knn")
ON_PRETRAIN = {"pretrain", "finetune", "foldin"}
"""Baselines that evaluate the ``pretrain`` learner's model."""
SIMPLE = {"global-mean": GlobalMean, "biases": Biases, "popularity": Popularity,
          "item-knn": ItemKNN}
"""Baselines with default settings, fitted on the training ratings alone."""
REFITTED = {*SIMPLE, "biased-mf"}
"""Baselines fitted on the training ratings at evaluation time (no checkpoint)."""
TABLE_METRICS = ("mae", "rmse", "ndcg@3", "precision@5", "accuracy")


@dataclass
class RunResult:
    """What a run produced: per-seed records, their aggregate, training histories."""

    config: RunConfig
    records: list[dict[str, Any]] = field(default_factory=list)
    aggregated: list[dict[str, Any]] = field(default_factory=list)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Each learner's training curve (epoch records) with the first of the run's seeds."""
    timings: dict[str, float] = field(default_factory=dict)
    split_summary: list[dict[str, Any]] = field(default_factory=list)
    """:meth:`ColdStartSplit.summary` of the first of the run's seeds."""


def load_data(config: RunConfig) -> Dataset:
    """The data set named by ``config.data``, its options checked first
    (:func:`~metarec.config.reader_options`: an unknown one is a :class:`ConfigError`)."""
    from metarec.data.registry import load_dataset

    options = reader_options(config.data.dataset, config.data.options)
    data_dir = Path(config.data.data_dir) if config.data.data_dir else None
    return load_dataset(config.data.dataset, data_dir=data_dir, **options)


def check_fields(model: ModelConfig, *datasets: Dataset) -> None:
    """A :class:`ConfigError` when ``model.exclude_fields`` names a field that none of
    ``datasets`` has (a typo would otherwise train on the field it meant to drop)."""
    known = {s.name for d in datasets for s in (*d.users.specs, *d.items.specs)}
    unknown = sorted(set(model.exclude_fields) - known)
    if unknown:
        raise ConfigError(f"model.exclude_fields names no field of the data: {unknown}; "
                          f"its fields: {sorted(known)}")


def to_train(config: RunConfig) -> list[str]:
    """The learners a run trains: ``config.learners``, plus ``pretrain`` when a baseline
    evaluates its model."""
    extra = ["pretrain"] if ON_PRETRAIN & set(config.baselines) else []
    return list(dict.fromkeys([*config.learners, *extra]))


def check_run(config: RunConfig) -> None:
    """Refuse now, before data are loaded or anything trains, what would fail later: an
    unknown learner or baseline, a learner's settings (``[learner]`` with its
    ``[per_learner]`` table) that it refuses, and ``ridge``'s settings when the
    ``foldin`` control takes them."""
    seeded = [name for name, value in (("split.seed", config.split.seed),
                                       ("learner.seed", config.learner.seed)) if value]
    seeded += [f"per_learner.{name}.seed" for name, values in config.per_learner.items()
               if values.get("seed")]
    if seeded:  # each seed of `seeds` sets both; these would be written and not used
        raise ConfigError(f"{', '.join(seeded)}: metarec run splits and trains once per "
                          "seed of `seeds` (--seed N, repeatable), which sets both; leave "
                          "these at 0 (they are for metarec train)")
    unknown = [b for b in config.baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    for name in config.learners:
        learner_class(name)
    if "foldin" in config.baselines:
        config.learner_config("ridge")
    check_learners([(name, config.learner_config(name)) for name in to_train(config)],
                   config.model)


def tiny_dataset() -> Dataset:
    """A generated data set of 20 users and 20 items to build models on for checks."""
    from metarec.data.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(num_users=20, num_items=20, num_ratings=300))


def check_learners(learners: Iterable[tuple[str, LearnerConfig]], model: ModelConfig) -> None:
    """Build each ``(name, settings)`` learner over a ``model`` for a tiny generated data
    set, so that the checks of its class (a setting another learner owns, a device this
    machine lacks) fail before any training. Leaves torch's random state as it was."""
    learners = list(learners)
    if not learners:
        return
    tiny = tiny_dataset()
    options = {k: v for k, v in model.options().items() if k != "exclude_fields"}
    with torch.random.fork_rng(devices=[]):
        for name, settings in learners:
            learner_class(name)(build_model(model.kind, tiny, **options), settings)


def make_split(dataset: Dataset, config: RunConfig, seed: int) -> ColdStartSplit:
    return split_dataset(dataset, replace(config.split, seed=seed))


def train_learner(name: str, dataset: Dataset, split: ColdStartSplit, config: RunConfig,
                  seed: int, events: Events | None = None) -> Learner:
    """Build and fit learner ``name`` on the side features the split lets training see
    (:meth:`ColdStartSplit.features`)."""
    dataset = split.features(dataset)
    torch.manual_seed(seed)
    settings = replace(config.learner_config(name), seed=seed)
    model = build_model(config.model.kind, dataset, **config.model.options())
    learner = learner_class(name)(model, settings)

    def on_epoch(record: dict[str, Any]) -> None:
        if events is not None:
            events("epoch", {"learner": name, "seed": seed, **record})

    return learner.fit(split.train, dataset, split.validation, progress=on_epoch)


def predictors_for(trained: dict[str, Learner], split: ColdStartSplit, config: RunConfig,
                   names: list[str], dataset: Dataset,
                   seed: int | None = None) -> dict[str, Predictor]:
    """A ``predict_tasks`` function per learner or baseline name; ``seed`` (the split's
    by default) seeds the baselines fitted here that draw random numbers."""
    train = split.train_ratings
    n_users, n_items = dataset.num_users, dataset.num_items
    out: dict[str, Predictor] = {}
    for name in names:
        if name in SIMPLE:
            baseline = SIMPLE[name]().fit(train, n_users, n_items)
            out[name] = (Ranked(baseline.predict_tasks, baseline.rank_tasks)
                         if isinstance(baseline, Popularity) else baseline.predict_tasks)
        elif name == "biased-mf":
            out[name] = tuned_mf(train, n_users, n_items, split.validation,
                                 config.learner.loss, factors=config.model.factors,
                                 seed=split.config.seed if seed is None else seed
                                 ).predict_tasks
        elif name == "pretrain":
            out[name] = _with_steps(trained["pretrain"], 0)
        elif name == "finetune":
            out[name] = _with_steps(trained["pretrain"], config.learner.inner_steps)
        elif name == "foldin":
            # The control solves what `ridge` solves (its [per_learner.ridge] inner_steps,
            # adapt_loss, memory and neighbours settings).
            ridge = config.learner_config("ridge")
            out[name] = fold_in(trained["pretrain"], split.validation,
                                inner_steps=ridge.inner_steps, adapt_loss=ridge.adapt_loss,
                                memory_precision=ridge.memory_precision,
                                memory_level=ridge.memory_level,
                                neighbours=ridge.neighbours).predict_tasks
        else:
            out[name] = trained[name].predict_tasks
    return out


@dataclass
class Ranked:
    """A predictor whose ranking metrics rank by ``score`` rather than by its rating
    predictions (``popularity``: by rating count)."""

    predict: Predictor
    score: Predictor

    def __call__(self, tasks: TaskSet) -> np.ndarray:
        return self.predict(tasks)


def _with_steps(learner: Learner, steps: int) -> Predictor:
    return lambda tasks: learner.predict_tasks(tasks, steps=steps)


def all_candidates(tasks: TaskSet, num_items: int, rated: Interactions | None = None
                   ) -> TaskSet:
    """``tasks`` with each query replaced by every item outside the task's support: the
    query ratings keep their values, every other item has rating NaN (not relevant), so
    ranking metrics rank the whole catalogue. Items the user rated elsewhere (in
    ``rated``, e.g. the data set's ratings, but not in this query: ratings held out in
    another scenario) are no candidates: they are not unrated, and their ratings are
    not this task's to judge."""
    users, items, ratings = [], [], []
    elsewhere: dict[int, np.ndarray] = {}
    if rated is not None:
        mine = np.isin(rated.user, tasks.users)
        order = np.argsort(rated.user[mine], kind="stable")
        by_user, rows = rated.user[mine][order], rated.item[mine][order]
        starts = np.searchsorted(by_user, tasks.users)
        ends = np.searchsorted(by_user, tasks.users, side="right")
        elsewhere = {int(u): rows[a:b] for u, a, b in zip(tasks.users, starts, ends,
                                                          strict=True)}
    for t in range(len(tasks)):
        support = tasks.support.item[tasks.support_offsets[t]:tasks.support_offsets[t + 1]]
        rows_t = slice(tasks.query_offsets[t], tasks.query_offsets[t + 1])
        query_items = tasks.query.item[rows_t]
        rating = np.full(num_items, np.nan, dtype=np.float32)
        rating[query_items] = tasks.query.rating[rows_t]
        other = np.setdiff1d(elsewhere.get(int(tasks.users[t]), []), query_items)
        candidates = np.setdiff1d(np.arange(num_items), np.union1d(support, other))
        users.append(np.full(len(candidates), tasks.users[t]))
        items.append(candidates)
        ratings.append(rating[candidates])
    sizes = np.array([len(i) for i in items])
    query = Interactions(np.concatenate(users), np.concatenate(items), np.concatenate(ratings),
                         np.full(int(sizes.sum()), np.nan))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return TaskSet(tasks.users, tasks.support, tasks.support_offsets, query, offsets)


def evaluate_predictors(predictors: dict[str, Predictor], split: ColdStartSplit,
                        config: RunConfig, seed: int, dataset: Dataset | None = None
                        ) -> list[dict[str, Any]]:
    """Records ``{learner, scenario, metric, value, seed}`` for every scenario, the
    cold-start curve (``new_users_k{k}``: support capped at k ratings), with
    ``evaluation.all_items`` ranking of new users over every item (``new_users_all``) and
    with ``evaluation.validation`` the validation users (``validation``, and
    ``validation_new_items``: their new-item supports split again, see
    :attr:`ColdStartSplit.validation_new_items`; ``validation_trained_new_items``: new-film
    ratings of training users that no scenario evaluates, see
    :attr:`ColdStartSplit.validation_trained_new_items`)."""
    records: list[dict[str, Any]] = []
    ks, threshold = tuple(config.evaluation.ks), config.evaluation.threshold
    levels = rating_levels(split.train_ratings.rating)
    sets: dict[str, TaskSet] = {s: split.scenarios[s] for s in SCENARIOS
                                if len(split.scenarios[s])}
    for shots in config.evaluation.shots:
        if len(split.scenarios["new_users"]):
            sets[f"new_users_k{shots}"] = split.scenarios["new_users"].cap_support(shots, seed)
    if config.evaluation.all_items and dataset is not None and len(
            split.scenarios["new_users"]):
        sets["new_users_all"] = all_candidates(split.scenarios["new_users"],
                                               dataset.num_items, dataset.interactions)
    if config.evaluation.validation:
        for name, tasks in [("validation", split.validation),
                            ("validation_new_items", split.validation_new_items),
                            ("validation_trained_new_items",
                             split.validation_trained_new_items)]:
            if len(tasks):
                sets[name] = tasks
    for name, predict in predictors.items():
        for scenario, tasks in sets.items():
            score = predict.score(tasks) if isinstance(predict, Ranked) else None
            frame = predictions_frame(tasks, predict(tasks), score)
            for metric, value in compute_metrics(frame, ks=ks, threshold=threshold,
                                                 levels=levels).items():
                records.append({"learner": name, "scenario": scenario, "metric": metric,
                                "value": float(value), "seed": seed})
    return records


def run_experiment(config: RunConfig, out: str | Path | None = None,
                   events: Events | None = None, dataset: Dataset | None = None) -> RunResult:
    """Train and evaluate everything in ``config``; write a run folder to ``out``.
    ``dataset`` replaces loading ``config.data`` (e.g. a data set assembled in code).

    The config is checked first (:func:`check_run`). The run is written into a new folder
    beside ``out`` that replaces ``out`` as a whole once everything succeeded (an old run
    there is deleted; see :func:`~metarec.evaluation.report.replaced_folder`); a run that
    fails leaves ``out`` as it was and deletes what it wrote. ``out`` must be absent, an
    empty folder or a run folder (:data:`~metarec.evaluation.report.RUN_FILES`)."""
    check_run(config)
    if out is None:
        return _run(config, None, events, dataset)
    with replaced_folder(out) as staging:
        return _run(config, staging, events, dataset)


def _run(config: RunConfig, out: Path | None, events: Events | None,
         dataset: Dataset | None) -> RunResult:
    result = RunResult(config)
    started = time.perf_counter()
    emit = events or (lambda kind, payload: None)
    if dataset is None:
        emit("stage", {"message": f"loading {config.data.dataset}"})
        dataset = load_data(config)
    check_fields(config.model, dataset)
    for seed in config.seeds:
        split = make_split(dataset, config, seed)
        split.require_training(dataset.name)
        if seed == config.seeds[0]:  # the split and training curves of the first seed
            result.split_summary = split.summary()
        trained: dict[str, Learner] = {}
        for name in to_train(config):
            emit("stage", {"message": f"seed {seed}: training {name}"})
            tic = time.perf_counter()
            trained[name] = train_learner(name, dataset, split, config, seed, events)
            result.timings[f"train/{name}/seed{seed}"] = time.perf_counter() - tic
            result.histories.setdefault(name, trained[name].history_)
            if out is not None:
                trained[name].save(out / "checkpoints" / f"{name}-seed{seed}")
        emit("stage", {"message": f"seed {seed}: evaluating"})
        names = list(dict.fromkeys([*config.baselines, *config.learners]))
        predictors = predictors_for(trained, split, config, names, dataset)
        result.records += evaluate_predictors(predictors, split, config, seed, dataset)
    result.aggregated = aggregate_seeds(result.records)
    result.timings["total"] = time.perf_counter() - started
    if out is not None:
        write_results(result, dataset.name, out)
    emit("done", {"seconds": result.timings["total"]})
    return result


def evaluate_run(run_dir: str | Path, events: Events | None = None,
                 device: str | None = None) -> RunResult:
    """Re-evaluate a saved run folder from its ``config.toml`` and checkpoints, the
    learners loaded on ``device`` (default: see :meth:`Learner.load`)."""
    folder = Path(run_dir)
    if not (folder / "config.toml").is_file():
        raise CheckpointError(f"{folder}: not a run folder (no config.toml)")
    config = load_config(folder / "config.toml")
    missing = [f"checkpoints/{name}-seed{seed}" for seed in config.seeds
               for name in to_train(config)
               if not (folder / "checkpoints" / f"{name}-seed{seed}" / "learner.json").is_file()]
    if missing:
        raise CheckpointError(f"{folder}: missing checkpoint(s) {', '.join(missing)} (a "
                              "run folder from `metarec run` has one per learner and seed)")
    result = RunResult(config)
    dataset = load_data(config)
    names = list(dict.fromkeys([*config.baselines, *config.learners]))
    for seed in config.seeds:
        split = make_split(dataset, config, seed)
        features = split.features(dataset)
        trained: dict[str, Learner] = {}
        for name in to_train(config):
            path = folder / "checkpoints" / f"{name}-seed{seed}"
            trained[name] = Learner.load(path, features=features, device=device)
            if trained[name].known_ is None:  # what fit saw: the split's training
                trained[name].known_ = split.train_ratings  # ratings (for memories)
        result.records += evaluate_predictors(predictors_for(trained, split, config, names,
                                                             dataset),
                                              split, config, seed, dataset)
    result.aggregated = aggregate_seeds(result.records)
    return result


def write_results(result: RunResult, dataset: str, out: Path) -> Path:
    """Write ``results.json``, plots and ``report.html`` for ``result`` into ``out``."""
    config = result.config
    document = results_document(dataset, config.split.protocol, config.seeds, result.aggregated,
                                split=result.split_summary, timings=result.timings,
                                histories=result.histories,
                                split_and_histories_seed=config.seeds[0])
    figures = {}
    full = [r for r in result.aggregated if r["scenario"] in SCENARIOS]
    figures["scenarios_mae"] = bar_chart(full, "mae", [s for s in SCENARIOS if any(
        r["scenario"] == s for r in full)])
    figures["scenarios_ndcg3"] = bar_chart(full, "ndcg@3", [s for s in SCENARIOS if any(
        r["scenario"] == s for r in full)])
    curve: dict[str, tuple[list[float], list[float]]] = {}
    for r in result.aggregated:
        if r["scenario"].startswith("new_users_k") and r["metric"] == "mae":
            xs, ys = curve.setdefault(r["learner"], ([], []))
            xs.append(float(r["scenario"].rsplit("k", 1)[1]))
            ys.append(r["mean"])
    if curve:
        figures["cold_start_curve"] = line_chart(curve, xlabel="support ratings per new user",
                                                 ylabel="MAE", title="Cold-start curve",
                                                 logx=True)
    losses = {}
    for name, history in result.histories.items():
        if history:
            losses[f"{name} train"] = ([h["epoch"] for h in history],
                                       [h["train_loss"] for h in history])
            if "val_loss" in history[0]:
                losses[f"{name} val"] = ([h["epoch"] for h in history],
                                         [h["val_loss"] for h in history])
    if losses:
        figures["training_curves"] = line_chart(losses, xlabel="epoch", ylabel="MSE",
                                                title="Training curves")
    return write_run_folder(out, config_toml=config.to_toml(), document=document,
                            figures=figures, title=f"metarec run: {dataset}",
                            table=summary_table(result.aggregated))


def summary_table(aggregated: list[dict[str, Any]],
                  metrics: tuple[str, ...] = ("mae", "ndcg@3")) -> list[dict[str, Any]]:
    """One row per learner: ``scenario/metric`` columns with mean values."""
    rows: dict[str, dict[str, Any]] = {}
    for r in aggregated:
        if r["scenario"] in SCENARIOS and r["metric"] in metrics:
            row = rows.setdefault(r["learner"], {"learner": r["learner"]})
            row[f"{r['scenario']}/{r['metric']}"] = r["mean"]
    return list(rows.values())
