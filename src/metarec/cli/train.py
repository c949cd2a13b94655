"""``metarec train``: meta-train one learner from a run config, on one process or many.

The same command runs directly (``metarec train --config run.toml``) or under
``torchrun --nproc-per-node N -m metarec train --config run.toml``: the process group
comes from torchrun's environment (see :mod:`metarec.learners.distributed`). Rank 0 shows
progress and writes ``OUT/checkpoints/LEARNER/`` (the learner, plus ``trainer_state.pt``
for ``--resume``), ``OUT/train.json`` and ``OUT/train_config.toml`` (the resolved config).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from metarec.config import load_config, reader_options
from metarec.data.registry import load_dataset
from metarec.data.splits import split_dataset
from metarec.errors import ConfigError
from metarec.learners.distributed import (
    STATE_FILE,
    DistributedContext,
    DistributedMetaTrainer,
    init_distributed,
)
from metarec.learners.meta_learner import MetaLearner
from metarec.learners.registry import ALIASES, LEARNERS, learner_class
from metarec.models import build_model

logger = logging.getLogger(__name__)
BACKENDS = ("gloo", "nccl", "mpi")
"""What ``--backend`` may name (see :func:`~metarec.learners.distributed.init_distributed`)."""


@dataclass
class TrainJob:
    """One ``metarec train`` invocation, as plain values (so Ray can ship it to workers).

    ``learner`` defaults to the config's first learner; ``max_steps`` stops early (counting
    resumed steps); ``threads`` sets ``torch.set_num_threads`` per process.
    """

    config: str | None = None
    learner: str | None = None
    out: str = "runs/train"
    resume: bool = False
    overrides: list[str] = field(default_factory=list)
    backend: str | None = None
    timeout_s: float = 300.0
    checkpoint_every: int = 100
    max_steps: int | None = None
    threads: int | None = None


def run_job(job: TrainJob, *, show_progress: bool = True) -> dict[str, Any]:
    """The worker every process runs: join the group, load data, split, build the model and
    learner, train, and (rank 0) write the checkpoint and ``train.json``. Returns the
    summary written to ``train.json``."""
    if job.max_steps is not None and job.max_steps < 1:
        raise ConfigError(f"--max-steps must be >= 1 (or left out: train to the end), got "
                          f"{job.max_steps}")
    if job.threads is not None and job.threads < 1:
        raise ConfigError(f"--threads must be >= 1 (or left out: torch's default), got "
                          f"{job.threads}")
    if Path(job.out).exists() and not Path(job.out).is_dir():
        raise ConfigError(f"--out {job.out} is a file: name a folder for the checkpoints")
    if job.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be >= 1, got {job.checkpoint_every}")
    if job.backend not in (None, *BACKENDS):
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)} (default: nccl "
                          f"with a GPU, else gloo), got {job.backend!r}")
    context = init_distributed(job.backend, job.timeout_s)
    finished = False
    try:
        if not context.is_main:
            logging.getLogger("metarec").setLevel(logging.ERROR)
        if job.threads is not None:
            torch.set_num_threads(job.threads)
        summary = _train(job, context, show_progress and context.is_main)
        finished = True
        return summary
    finally:
        context.close(synchronise=finished)


def _train(job: TrainJob, context: DistributedContext, show_progress: bool) -> dict[str, Any]:
    config = load_config(job.config, job.overrides)
    name = job.learner or (config.learners[0] if config.learners else "maml-r")
    cls = learner_class(name)
    if not issubclass(cls, MetaLearner):
        supported = [n for n, c in LEARNERS.items() if issubclass(c, MetaLearner)]
        aliases = [f"{a} (= {n})" for a, n in ALIASES.items() if n in supported]
        raise ConfigError(f"learner {name!r} is not a meta-learner; metarec train supports "
                          f"{', '.join(supported + aliases)}")
    out = Path(job.out)
    folder = out / "checkpoints" / cls.name
    _check_out(out, folder, cls.name, job.resume)
    options = reader_options(config.data.dataset, config.data.options)
    data_dir = Path(config.data.data_dir) if config.data.data_dir else None
    dataset = load_dataset(config.data.dataset, data_dir=data_dir, **options)
    from metarec.experiment import check_fields  # (imports matplotlib: not at --help)

    check_fields(config.model, dataset)
    split = split_dataset(dataset, config.split)
    split.require_training(dataset.name)
    dataset = split.features(dataset)  # as training may see them (split options)
    # Every rank builds the same initial weights (the trainer also broadcasts rank 0's).
    settings = config.learner_config(cls.name)
    torch.manual_seed(settings.seed)
    model = build_model(config.model.kind, dataset, **config.model.options())
    learner = cls(model, settings)
    console = Console(stderr=True)
    tasks_done = [0]

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                        TimeElapsedColumn(), console=console, disable=not show_progress)
    bar = progress.add_task(f"{learner.name} x{context.world_size}", total=None, loss=float("nan"))

    def on_step(record: dict[str, Any]) -> None:
        tasks_done[0] += record["tasks"]
        progress.update(bar, completed=record["step"], loss=record["loss"])

    trainer = DistributedMetaTrainer(learner, split.train, dataset, split.validation,
                                     context=context, checkpoint_dir=folder,
                                     checkpoint_every=job.checkpoint_every,
                                     max_steps=job.max_steps, on_step=on_step)
    resumed = False
    if job.resume:
        resumed = trainer.resume()
        if not resumed and context.is_main:
            logger.warning("--resume: no checkpoint in %s, starting from scratch", folder)
    first_step = trainer.step_
    progress.update(bar, total=trainer.total_steps(), completed=first_step)
    start = time.perf_counter()
    with progress:
        trainer.fit()
    seconds = time.perf_counter() - start
    summary = {
        "learner": learner.name,
        "world_size": context.world_size,
        "backend": context.backend,
        "resumed_from_step": first_step if resumed else None,
        "steps": trainer.step_,
        "epochs": trainer.epoch_,
        "finished": trainer.finished_,
        "seconds": round(seconds, 3),
        # None when this invocation took no step (a finished run resumed).
        "tasks_per_second": (round(tasks_done[0] / seconds, 2)
                             if seconds > 0 and tasks_done[0] else None),
        "checkpoint": str(folder),
        "history": learner.history_,
        "job": asdict(job),
    }
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train.json").write_text(json.dumps(summary, indent=2, default=str))
        # What the checkpoint was trained on, for `metarec prequential OUT` and serve (not
        # config.toml: OUT is no `metarec run` folder, and may be one).
        (out / "train_config.toml").write_text(config.to_toml())
    return summary


def _check_out(out: Path, folder: Path, name: str, resume: bool) -> None:
    """Refuse an ``--out`` this job cannot write, before anything trains: a file where a
    checkpoint folder goes; without ``--resume``, a training run already there (finished
    or not: it would be overwritten); with it, another learner's training when this one
    has no checkpoint there (one ``--out`` holds one learner's training: ``train.json`` is
    one per folder; folders written before this rule may hold several, each resumable)."""
    for path in (out / "checkpoints", folder):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out}: {path} is a file, where the checkpoints go: "
                              "name another --out")
    summary = out / "train.json"
    trained: list[str] = []  # the learners whose training --out holds
    held = None  # what a fresh start would overwrite
    if summary.is_file():
        try:
            trained.append(str(json.loads(summary.read_text())["learner"]))
            held = f"a training of {trained[0]!r} ({summary})"
        except (OSError, ValueError, KeyError, TypeError):
            held = f"{summary}, unreadable"
    states = (sorted((out / "checkpoints").glob(f"*/{STATE_FILE}"))
              if (out / "checkpoints").is_dir() else [])
    for state in states:  # a training killed before it wrote train.json
        trained.append(state.parent.name)
        held = held or f"an unfinished training ({state})"
    if not resume and held is not None:
        raise ConfigError(f"--out {out} holds {held}: continue it with --resume, or name "
                          "another --out (nothing was written)")
    other = next((t for t in trained if t != name), None)
    if resume and other is not None and not (folder / STATE_FILE).is_file():
        raise ConfigError(f"--out {out} holds a training of {other!r}, not {name!r}: "
                          f"resume it with --learner {other}, or name another --out")


def train(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Run config (TOML); default: the built-in defaults.")] = None,
    learner: Annotated[str | None, typer.Option(
        "--learner", "-l", help="Learner to train (default: the config's first).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from OUT/checkpoints/LEARNER if it exists.")] = False,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config field: section.field=value (repeatable).")] = None,
    backend: Annotated[str | None, typer.Option(
        "--backend", help="gloo, nccl or mpi (default: nccl with a GPU, else gloo).")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds to wait for the other ranks before failing.")] = 300.0,
    checkpoint_every: Annotated[int, typer.Option(
        "--checkpoint-every", help="Write a checkpoint every N meta-steps.")] = 100,
    max_steps: Annotated[int | None, typer.Option(
        "--max-steps", help="Stop after N meta-steps in all (resumed ones count).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="torch threads per process.")] = None,
) -> None:
    """Meta-train a learner; run under torchrun for data-parallel training over tasks."""
    job = TrainJob(config=None if config is None else str(config), learner=learner,
                   out=str(out), resume=resume, overrides=list(overrides or []), backend=backend,
                   timeout_s=timeout, checkpoint_every=checkpoint_every, max_steps=max_steps,
                   threads=threads)
    summary = run_job(job)
    if os.environ.get("RANK", "0") == "0":
        last = summary["history"][-1] if summary["history"] else {}
        errors = ", ".join(f"val {name.upper()} {last[f'val_{name}']:.4f}"
                           for name in ("mse", "mae") if f"val_{name}" in last)
        rate = summary["tasks_per_second"]
        typer.echo(f"{summary['learner']}: {summary['steps']} meta-steps, "
                   f"{summary['epochs']} epochs on {summary['world_size']} process(es)"
                   + (f", {rate} tasks/s" if rate is not None else ", no step taken")
                   + (f", {errors}" if errors else ""))
        typer.echo(f"checkpoint: {summary['checkpoint']}")


def train_with_ray(job: TrainJob, num_workers: int, use_gpu: bool = False) -> dict[str, Any]:
    """Run :func:`run_job` on ``num_workers`` Ray Train workers (``TorchTrainer``), which
    set up the process group themselves. Needs ``pip install 'ray[train]'`` and an ``out``
    folder every worker can reach. Returns rank 0's summary."""
    try:
        from ray.train import ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as error:
        raise ConfigError("Ray Train is not installed: pip install 'metarec[ray]' "
                          "(or 'ray[train]')") from error
    trainer = TorchTrainer(_ray_worker, train_loop_config={"job": asdict(job)},
                           scaling_config=ScalingConfig(num_workers=num_workers,
                                                        use_gpu=use_gpu))
    result = trainer.fit()
    return dict(result.metrics or {})  # Ray Train v2 may report no metrics


def _ray_worker(loop_config: dict[str, Any]) -> None:  # pragma: no cover - needs Ray
    from ray import train as ray_train

    summary = run_job(TrainJob(**loop_config["job"]), show_progress=False)
    ray_train.report({k: v for k, v in summary.items() if k not in ("history", "job")})
