"""``metarec transfer`` and ``metarec distill``: one TOML config drives a whole run.

The config is a normal run config (``[data]`` = the target data set, ``[split]``,
``[model]`` = the source / teacher architecture, ``[learner]``, ``seeds``) plus one extra
section parsed here: ``[transfer]`` (:class:`TransferRun`) or ``[distill]``
(:class:`DistillRun`). The experiment functions (:func:`transfer_experiment`,
:func:`distill_experiment`) are shared with ``benchmarks/transfer.py`` and
``benchmarks/distill.py``; the commands only parse, call them, print and write the run
folder (config.toml, results.json, plots, report.html, saved learners).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from metarec.errors import CheckpointError, ConfigError
from metarec.learners.config import LearnerConfig
from metarec.learners.registry import learner_class
from metarec.learners.transfer import TransferConfig

console = Console(width=None if sys.stdout.isatty() else 160)
Events = Callable[[str], None]
"""Receives one line per stage (e.g. ``"seed 0: training the source"``)."""

METRICS = ("mae", "ndcg@3")


# ---- configuration ------------------------------------------------------------------
@dataclass
class TransferRun(TransferConfig):
    """The ``[transfer]`` section: the :class:`~metarec.learners.transfer.TransferConfig`
    fields plus the experiment's. ``source``: ``domains`` (generated source and target
    from ``[data] options`` with ``shared_share``), ``same`` (the target data set's
    training users split in halves: source half -> target half, a non-meta control) or a
    data set name / path (``source_data_dir``, ``source_options``). ``source_checkpoint``
    skips source training. ``fractions`` of the target's training users give the
    data-efficiency curve; ``methods`` among ``target-only``, ``transfer``,
    ``transfer+meta`` (fine-tuned by ``meta_learner``)."""

    source: str = "domains"
    source_data_dir: str | None = None
    source_options: dict[str, Any] = field(default_factory=dict)
    shared_share: float = 0.5
    source_checkpoint: str | None = None
    fractions: list[float] = field(default_factory=lambda: [1.0])
    methods: list[str] = field(default_factory=lambda: ["target-only", "transfer",
                                                        "transfer+meta"])
    meta_learner: str = "maml-r"
    scenarios: list[str] = field(default_factory=lambda: ["new_users"])

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = sorted(set(self.methods) - {"target-only", "transfer", "transfer+meta"})
        if bad:
            raise ConfigError(f"unknown transfer method(s) {bad}; choose from target-only, "
                              "transfer, transfer+meta")
        if not self.fractions or not all(0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"transfer.fractions must be in (0, 1], got {self.fractions}")
        learner_class(self.meta_learner)

    def transfer_config(self) -> TransferConfig:
        """The transfer settings alone."""
        return TransferConfig(**{f.name: getattr(self, f.name) for f in fields(TransferConfig)})


@dataclass
class DistillRun:
    """The ``[distill]`` section: the teacher (``teacher_checkpoint``, or trained with
    ``teacher_learner`` once per seed in ``teacher_seeds``: several = an ensemble), the
    student (``student_kind`` FeatureMLP with ``student_embedding_dim`` /
    ``student_hidden``, or BiasedMF with ``student_factors``), the
    :class:`~metarec.learners.distill.DistillConfig` fields, ``label_fraction`` of the
    training users whose ratings the student may use (the teacher sees all), the
    evaluation ``scenarios`` and the timing sample sizes."""

    teacher_checkpoint: str | None = None
    teacher_learner: str = "pretrain"
    teacher_seeds: list[int] = field(default_factory=lambda: [0])
    student_kind: str = "FeatureMLP"
    student_embedding_dim: int = 8
    student_hidden: list[int] = field(default_factory=lambda: [16])
    student_factors: int = 8
    alpha: float = 0.5
    hint_weight: float = 0.0
    distill_pairs: int = 0
    student_learner: str = "pretrain"
    label_fraction: float = 1.0
    scenarios: list[str] = field(default_factory=lambda: ["new_users"])
    timing_pairs: int = 20000
    timing_users: int = 20

    def __post_init__(self) -> None:
        if self.student_kind not in ("FeatureMLP", "BiasedMF"):
            raise ConfigError(f"distill.student_kind must be FeatureMLP or BiasedMF, got "
                              f"{self.student_kind!r}")
        if not 0 < self.label_fraction <= 1:
            raise ConfigError(f"distill.label_fraction must be in (0, 1], got "
                              f"{self.label_fraction}")
        learner_class(self.teacher_learner)
        self.distill_config()

    def distill_config(self, seed: int = 0) -> Any:
        from metarec.learners.distill import DistillConfig

        return DistillConfig(alpha=self.alpha, hint_weight=self.hint_weight,
                             distill_pairs=self.distill_pairs,
                             student_learner=self.student_learner, seed=seed)


def load_run_config(path: Path | None, overrides: list[str], section: str,
                    cls: type) -> tuple[Any, Any, str]:
    """(RunConfig, section dataclass, TOML text) from ``path`` plus ``section.field=value``
    overrides; the extra ``[section]`` is checked like the others
    (:func:`~metarec.config.section_from_dict`), the rest read by ``metarec.config``."""
    import tomli_w

    from metarec.config import config_from_dict, read_config_values, section_from_dict, toml_values

    values = read_config_values(path, overrides)
    source = str(path) if path else "config"
    settings = section_from_dict(cls, values.pop(section, {}), section, source)
    run = config_from_dict(values, source)
    text = run.to_toml() + "\n" + tomli_w.dumps({section: toml_values(asdict(settings))})
    return run, settings, text


# ---- shared pieces ------------------------------------------------------------------
def _metrics(tasks: Any, pred: Any) -> dict[str, float]:
    from metarec.evaluation.metrics import compute_metrics
    from metarec.evaluation.protocol import predictions_frame

    values = compute_metrics(predictions_frame(tasks, pred))
    return {m: float(values[m]) for m in METRICS}


def _load_learner(path: str, features: Any, what: str) -> Any:
    """The learner saved at ``path``, checked against the data set ``features`` it is to
    run on (:func:`~metarec.learners.base.check_fits`; the message names it the ``what``
    checkpoint)."""
    from metarec.learners.base import Learner, check_fits

    if not Path(path).is_dir():
        raise CheckpointError(f"{what} checkpoint {path} does not exist (expected a folder "
                              "written by save(), e.g. a run folder's model/)")
    learner = Learner.load(path)
    check_fits(learner.model, features, f"{what} checkpoint {path}")
    learner.features_ = features
    return learner


def _check_split_seed(learner: Any, seed: int, seeds: list[int], same_users: bool,
                      what: str) -> None:
    """A ConfigError when a reused checkpoint trained on users of the data being split may
    have trained on this seed's test users (``same_users``): each seed splits the users
    anew, so one checkpoint fits one seed only -- and, for a ``metarec transfer`` source
    (``learner`` given), the seed it was trained with."""
    if not same_users:
        return
    if len(seeds) > 1:
        raise ConfigError(f"{what} was trained on one split of these users, but the run has "
                          f"seeds {seeds}: each seed's test users would include some it "
                          "trained on; run one seed per checkpoint")
    if learner is not None and learner.config.seed != seed:
        raise ConfigError(f"{what} was trained with seed {learner.config.seed}, this run "
                          f"splits with seed {seed}: its training users would include some "
                          "of this seed's test users; use seeds = "
                          f"[{learner.config.seed}]")


def _check_scenarios(split: Any, names: list[str]) -> None:
    for name in names:
        if name not in split.scenarios:
            raise ConfigError(f"unknown scenario {name!r}; choose from {list(split.scenarios)}")


# ---- transfer -----------------------------------------------------------------------
def transfer_datasets(run: Any, settings: TransferRun, seed: int) -> tuple[Any, Any]:
    """(source, target) data sets of a transfer run."""
    from metarec.config import reader_options
    from metarec.data.registry import load_dataset
    from metarec.experiment import load_data

    data = run.data
    if settings.source == "domains":
        from metarec.data.domains import generate_domains
        from metarec.data.synthetic import SyntheticConfig

        if data.dataset != "synthetic":
            raise ConfigError("transfer.source = 'domains' generates both domains: set "
                              "data.dataset = 'synthetic'")
        options = reader_options("synthetic", data.options)
        return generate_domains(SyntheticConfig(**options), settings.shared_share, seed)
    target = load_data(run)
    if settings.source == "same":
        return target, target
    options = reader_options(settings.source, settings.source_options,
                             "transfer.source_options")
    source_dir = Path(settings.source_data_dir) if settings.source_data_dir else None
    return load_dataset(settings.source, data_dir=source_dir, **options), target


def transfer_experiment(run: Any, settings: TransferRun, events: Events | None = None,
                        save_dir: Path | None = None) -> dict[str, Any]:
    """Pretrain on the source, then for every seed, fraction and method fit on the target
    and score the target's evaluation scenarios. Returns ``{"records", "report"}``:
    records ``{setting, seed, fraction, method, scenario, metric, value, fit_s}``."""
    import torch

    from metarec.data.splits import split_dataset
    from metarec.experiment import check_fields, check_learners
    from metarec.learners.registry import learner_class
    from metarec.learners.transfer import Transfer, split_users, subsample_users
    from metarec.models.base import build_model

    say = events or (lambda message: None)
    _refuse_training_feature_views(run)
    methods = {"target-only": "pretrain", "transfer": settings.target_learner,
               "transfer+meta": settings.meta_learner}
    names = [] if settings.source_checkpoint else [settings.source_learner]
    names += [methods[m] for m in settings.methods]
    check_learners([(name, run.learner_config(name)) for name in dict.fromkeys(names)],
                   run.model)
    records: list[dict[str, Any]] = []
    report = None
    tcfg = settings.transfer_config()
    setting = settings.source if settings.source in ("domains", "same") else (
        f"{Path(settings.source).name}->{Path(run.data.dataset).name}")
    for seed in run.seeds:
        def cfg(name: str, seed: int = seed) -> LearnerConfig:
            """``[learner]`` with ``[per_learner.NAME]`` and this seed."""
            return replace(run.learner_config(name), seed=seed)

        source_ds, target_ds = transfer_datasets(run, settings, seed)
        check_fields(run.model, source_ds, target_ds)
        target_split = split_dataset(target_ds, replace(run.split, seed=seed))
        _check_scenarios(target_split, settings.scenarios)
        target_train, source_train = target_split.train, None
        source_rated = None  # the ratings the source model is built on (training ones)
        if settings.source == "same":
            source_train, target_train = split_users(target_split.train, 0.5, seed)
            source_val = target_split.validation
            source_rated = target_split.features(target_ds)
        if settings.source_checkpoint:
            source = _load_learner(settings.source_checkpoint, source_ds, "source")
            _check_split_seed(source, seed, run.seeds, settings.source in ("domains", "same"),
                              f"source checkpoint {settings.source_checkpoint}")
            if save_dir is not None and seed == run.seeds[0]:  # the run folder is whole
                shutil.copytree(settings.source_checkpoint, save_dir / "source")
        else:
            if source_train is None:
                source_split = split_dataset(source_ds, replace(run.split, seed=seed))
                source_train, source_val = source_split.train, source_split.validation
                source_rated = source_split.features(source_ds)
            say(f"seed {seed}: training the source ({settings.source_learner}, "
                f"{len(source_train)} users of {source_ds.name})")
            torch.manual_seed(seed)  # the initial weights: one config, one result
            model = build_model(run.model.kind, source_rated, **run.model.options())
            started = time.perf_counter()
            source = learner_class(settings.source_learner)(
                model, cfg(settings.source_learner)).fit(
                source_train, source_ds, source_val)
            say(f"seed {seed}: source trained in {time.perf_counter() - started:.1f}s")
            if save_dir is not None and seed == run.seeds[0]:
                source.save(save_dir / "source")
        for fraction in settings.fractions:
            train = subsample_users(target_train, fraction, seed)
            for method in settings.methods:
                say(f"seed {seed}: {method} on {fraction:.0%} of the target's training "
                    f"users ({len(train)})")
                started = time.perf_counter()
                torch.manual_seed(seed)  # the target model's fresh weights
                if method == "target-only":
                    model = build_model(run.model.kind, target_split.features(target_ds),
                                        **run.model.options())
                    learner = learner_class("pretrain")(model, cfg("pretrain")).fit(
                        train, target_ds, target_split.validation)
                else:
                    method_cfg = (replace(tcfg, target_learner=settings.meta_learner)
                                  if method == "transfer+meta" else tcfg)
                    learner = Transfer(source, cfg(method_cfg.target_learner), method_cfg,
                                       source_features=source_ds).fit(
                        train, target_ds, target_split.validation)
                    report = learner.report_
                fit_s = time.perf_counter() - started
                for scenario in settings.scenarios:
                    tasks = target_split.scenarios[scenario]
                    for metric, value in _metrics(tasks, learner.predict_tasks(tasks)).items():
                        records.append({"setting": setting, "seed": seed, "fraction": fraction,
                                        "method": method, "scenario": scenario,
                                        "metric": metric, "value": value,
                                        "fit_s": round(fit_s, 2)})
                if (save_dir is not None and method != "target-only" and seed == run.seeds[-1]
                        and fraction == settings.fractions[-1]):
                    learner.save(save_dir / "model")
    return {"records": records, "report": None if report is None else report.to_dict()}


def summarise(records: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Mean over seeds of each metric, one row per ``keys`` combination."""
    import pandas as pd

    frame = pd.DataFrame(records)
    table = frame.pivot_table(index=list(keys), columns="metric", values="value",
                              aggfunc="mean", sort=False).reset_index()
    return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def transfer(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML config with a "
                                       "\\[transfer] section."),
    out: Path = typer.Option(Path("runs/transfer"), help="Run folder to write."),
    source_checkpoint: Path | None = typer.Option(
        None, "--source-checkpoint", help="A saved source learner (skips source training)."),
    freeze: str | None = typer.Option(None, help="none, embeddings, head-only or lr-ratio."),
    set_: list[str] = typer.Option(None, "--set", help="Override: section.field=value."),
) -> None:
    """Pretrain on a source, fine-tune on a target (with a freezing policy), compare with
    target-only training over fractions of the target's users; write a run folder."""
    overrides = list(set_ or [])
    if source_checkpoint is not None:
        overrides.append(f"transfer.source_checkpoint={str(source_checkpoint)!r}")
    if freeze is not None:
        overrides.append(f"transfer.freeze={freeze!r}")
    run, settings, text = load_run_config(config, overrides, "transfer", TransferRun)
    from metarec.evaluation.report import replaced_folder

    with replaced_folder(out) as folder:
        result = _with_progress("transfer", lambda events: transfer_experiment(
            run, settings, events, save_dir=folder))
        rows = summarise(result["records"], ("setting", "fraction", "method", "scenario"))
        figure = curve_figure(result["records"])
        _write(folder, text, run, result["records"], {"data_efficiency": figure},
               "metarec transfer", rows, transfer_report=result["report"])
    _print(rows, "Transfer (mean over seeds)")
    if result["report"]:
        table = Table(title="Transferred fields")
        for column in ("side", "name", "kind", "status", "copied", "fresh"):
            table.add_column(column)
        for row in result["report"]["fields"]:
            table.add_row(*(str(row[c]) for c in ("side", "name", "kind", "status", "copied",
                                                  "fresh")))
        console.print(table)
    console.print(f"run folder: {out}")


def curve_figure(records: list[dict[str, Any]], metric: str = "mae") -> Any:
    """MAE against the fraction of target training users, one line per method."""
    from metarec.evaluation.report import line_chart

    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in summarise(records, ("setting", "method", "scenario", "fraction")):
        name = f"{row['setting']} {row['method']} ({row['scenario']})"
        xs, ys = series.setdefault(name, ([], []))
        xs.append(row["fraction"])
        ys.append(row[metric])
    return line_chart(series, xlabel="fraction of target training users", ylabel=metric,
                      title="Data efficiency", logx=True)


# ---- distillation -------------------------------------------------------------------
def student_model(settings: DistillRun, dataset: Any, model: Any = None) -> Any:
    """The student model described by ``settings`` for ``dataset``. A FeatureMLP student
    takes the same inputs as the run's ``model`` section (id embeddings, excluded fields)
    when that describes a FeatureMLP; only its sizes are the student's own."""
    from metarec.models.base import build_model

    if settings.student_kind == "BiasedMF":
        return build_model("BiasedMF", dataset, factors=settings.student_factors)
    inputs = model.options() if model is not None and model.kind == "FeatureMLP" else {}
    return build_model("FeatureMLP", dataset, **{
        **inputs, "embedding_dim": settings.student_embedding_dim,
        "hidden": tuple(settings.student_hidden)})


def speed(learner: Any, tasks: Any, features: Any, pairs: int = 20000,
          users: int = 20, repeats: int = 3) -> dict[str, float]:
    """Global predictions per second (``pairs`` random pairs, batches of 4096, best of
    ``repeats``) and the median over ``users`` single-task batches of the per-user
    adaptation + prediction latency in ms (best of ``repeats`` each).
    ``learner`` may be a list (an ensemble: every member runs)."""
    import numpy as np
    import torch

    from metarec.tasks.batch import pad_tasks

    members = learner if isinstance(learner, list) else [learner]
    rng = np.random.default_rng(0)
    user = features.users.take(torch.from_numpy(rng.integers(0, features.users.num_rows, pairs)))
    item = features.items.take(torch.from_numpy(rng.integers(0, features.items.num_rows, pairs)))
    with torch.no_grad():
        for m in members:  # warm-up
            m.model(*_slice(user, item, 0, 4096))
        best = float("inf")
        for _ in range(repeats):  # best of several: other processes share the CPU
            started = time.perf_counter()
            for start in range(0, pairs, 4096):
                batch = _slice(user, item, start, start + 4096)
                torch.stack([m.model(*batch) for m in members]).mean(0)
            best = min(best, time.perf_counter() - started)
        throughput = pairs / best
    latencies = []
    for t in range(min(users, len(tasks))):
        batch = pad_tasks(tasks, np.array([t]), features.users, features.items)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for m in members:
                m.predict(m.adapt(batch), batch.user_fields, batch.query_fields)
            times.append(time.perf_counter() - started)
        latencies.append(min(times))
    return {"predictions_per_s": round(throughput, 1),
            "adapt_ms": round(1000 * float(np.median(latencies)), 3)}


def _slice(user: dict, item: dict, a: int, b: int) -> tuple[dict, dict]:
    return {k: v[a:b] for k, v in user.items()}, {k: v[a:b] for k, v in item.items()}


def _file_size(learner: Any) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m"
        members = learner if isinstance(learner, list) else [learner]
        total = 0
        for i, m in enumerate(members):
            m.save(path / str(i))
            total += (path / str(i) / "weights.safetensors").stat().st_size
        return total


def distill_experiment(run: Any, settings: DistillRun, events: Events | None = None,
                       save_dir: Path | None = None) -> list[dict[str, Any]]:
    """Teacher vs distilled student vs the same student trained without the teacher, per
    seed: MAE, nDCG@3 per scenario, parameter count, file size, predictions/s and per-user
    adaptation latency. Returns flat records (one per seed, model, scenario)."""
    import torch

    from metarec.data.splits import split_dataset
    from metarec.experiment import check_fields, check_learners, load_data, tiny_dataset
    from metarec.learners.distill import Distill, parameter_count
    from metarec.learners.transfer import subsample_users
    from metarec.models.base import build_model

    say = events or (lambda message: None)
    _refuse_training_feature_views(run)
    if not settings.teacher_checkpoint:
        check_learners([(settings.teacher_learner,
                         run.learner_config(settings.teacher_learner))], run.model)
    with torch.random.fork_rng(devices=[]):  # the student's settings, on a tiny data set
        tiny = tiny_dataset()
        Distill(student_model(settings, tiny, run.model), None,
                run.learner_config(settings.student_learner),
                settings.distill_config())
    dataset = load_data(run)
    check_fields(run.model, dataset)
    records: list[dict[str, Any]] = []
    for seed in run.seeds:
        cfg = replace(run.learner_config(settings.student_learner), seed=seed)
        split = split_dataset(dataset, replace(run.split, seed=seed))
        _check_scenarios(split, settings.scenarios)
        rated = split.features(dataset)  # models are built on the training ratings only
        if settings.teacher_checkpoint:
            teachers = [_load_learner(settings.teacher_checkpoint, dataset, "teacher")]
            _check_split_seed(None, seed, run.seeds, True,
                              f"teacher checkpoint {settings.teacher_checkpoint}")
        else:
            teachers = []
            for teacher_seed in settings.teacher_seeds:
                say(f"seed {seed}: training teacher {teacher_seed} ({settings.teacher_learner})")
                teacher_cfg = replace(run.learner_config(settings.teacher_learner),
                                      seed=seed * 1000 + teacher_seed)
                torch.manual_seed(teacher_cfg.seed)  # the initial weights
                model = build_model(run.model.kind, rated, **run.model.options())
                teachers.append(learner_class(settings.teacher_learner)(model, teacher_cfg).fit(
                    split.train, dataset, split.validation))
        labelled = subsample_users(split.train, settings.label_fraction, seed)
        # The students are built on the labelled ratings alone (their starting mean too).
        student_rated = rated if labelled is split.train else replace(
            rated, interactions=labelled.all_ratings())
        models: dict[str, Any] = {"teacher": teachers if len(teachers) > 1 else teachers[0]}
        for name, teacher in (("student+teacher", teachers), ("student alone", None)):
            say(f"seed {seed}: training {name} on {len(labelled)} labelled users")
            torch.manual_seed(seed)  # both students start from the same weights
            student = Distill(student_model(settings, student_rated, run.model), teacher, cfg,
                              settings.distill_config(seed))
            models[name] = student.fit(labelled, dataset, split.validation,
                                       pair_users=split.train.users)
        if save_dir is not None and seed == run.seeds[-1]:
            models["student+teacher"].save(save_dir / "student")
        for name, learner in models.items():
            members = learner if isinstance(learner, list) else [learner]
            facts = {"parameters": sum(parameter_count(m.model) for m in members),
                     "file_bytes": _file_size(learner),
                     **speed(learner, split.scenarios[settings.scenarios[0]], dataset,
                             settings.timing_pairs, settings.timing_users)}
            for scenario in settings.scenarios:
                tasks = split.scenarios[scenario]
                preds = [m.predict_tasks(tasks) for m in members]
                values = _metrics(tasks, sum(preds) / len(preds))
                records.append({"seed": seed, "model": name, "scenario": scenario,
                                **values, **facts})
    return records


def distill(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML config with a "
                                       "\\[distill] section."),
    out: Path = typer.Option(Path("runs/distill"), help="Run folder to write."),
    teacher_checkpoint: Path | None = typer.Option(
        None, "--teacher-checkpoint", help="A saved teacher learner (skips teacher training)."),
    alpha: float | None = typer.Option(None, help="Weight of the teacher term."),
    set_: list[str] = typer.Option(None, "--set", help="Override: section.field=value."),
) -> None:
    """Distil a trained teacher into a smaller student; compare teacher, student and the
    same student without a teacher; write a run folder."""
    overrides = list(set_ or [])
    if teacher_checkpoint is not None:
        overrides.append(f"distill.teacher_checkpoint={str(teacher_checkpoint)!r}")
    if alpha is not None:
        overrides.append(f"distill.alpha={alpha}")
    run, settings, text = load_run_config(config, overrides, "distill", DistillRun)
    from metarec.evaluation.report import bar_chart, replaced_folder

    with replaced_folder(out) as folder:
        records = _with_progress("distill", lambda events: distill_experiment(
            run, settings, events, save_dir=folder))
        rows = summarise_distill(records)
        bars = [{"learner": r["model"], "scenario": r["scenario"], "metric": "mae",
                 "mean": r["mae"], "sd": 0.0} for r in rows]
        figure = bar_chart(bars, "mae", list(dict.fromkeys(r["scenario"] for r in rows)))
        _write(folder, text, run, records, {"mae": figure}, "metarec distill", rows)
    _print(rows, "Distillation (mean over seeds)")
    console.print(f"run folder: {out}")


def summarise_distill(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (model, scenario)."""
    import pandas as pd

    frame = pd.DataFrame(records).drop(columns="seed")
    table = frame.groupby(["model", "scenario"], sort=False).mean().reset_index()
    counts = ("parameters", "file_bytes")
    return [{k: (int(v) if k in counts else round(v, 4) if isinstance(v, float) else v)
             for k, v in row.items()} for row in table.to_dict("records")]


# ---- output -------------------------------------------------------------------------
def _with_progress(name: str, experiment: Callable[[Callable[[str], None]], Any]) -> Any:
    """Run ``experiment(events)`` under a progress bar that logs each event message."""
    with _progress() as bar:
        task = bar.add_task(name, total=None)

        def events(message: str) -> None:
            bar.update(task, description=message, advance=1)
            console.log(message)

        return experiment(events)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def _print(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    if not rows:
        console.print(table)
        return
    for column in rows[0]:
        table.add_column(str(column), justify="left" if isinstance(rows[0][column], str)
                         else "right")
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def _write(out: Path, text: str, run: Any, records: list[dict[str, Any]],
           figures: dict[str, Any], title: str, rows: list[dict[str, Any]],
           **extra: Any) -> None:
    from metarec.evaluation.report import results_document, write_run_folder

    protocol = f"{run.split.protocol} split"
    document = results_document(run.data.dataset, protocol, run.seeds, records, **extra)
    write_run_folder(out, config_toml=text, document=document, figures=figures, title=title,
                     table=rows)


def _refuse_training_feature_views(run: Any) -> None:
    """Transfer and distillation fit on subsets and other data sets than one split's
    training users, so "codes (or values) training saw" is not one thing there: refuse the
    options."""
    for option in ("unseen_codes_missing", "numeric_within_training"):
        if getattr(run.split, option):
            raise ConfigError(f"split.{option} is for `metarec run`, `metarec train` "
                              "and the benchmarks; transfer and distillation do not support it")
