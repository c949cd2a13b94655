"""``metarec run`` (train + evaluate everything in a config) and ``metarec evaluate``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from metarec.config import load_config
from metarec.data.splits import SCENARIOS
from metarec.errors import CheckpointError, ConfigError

console = Console(width=None if sys.stdout.isatty() else 160)


SHORT = {"warm": "warm", "new_users": "new users", "new_items": "new items",
         "new_users_new_items": "new users x items"}


def _table(aggregated: list[dict[str, Any]], metrics: tuple[str, str] = ("mae", "ndcg@3"),
           split: list[dict[str, Any]] | None = None, seed: int | None = None) -> Table:
    """Learners x scenarios; each cell ``MAE / nDCG@3`` (± sd over seeds when > 1); with
    the ``split`` summary, a caption with each scenario's test users (an empty scenario
    has no column, and the caption says so; ``seed``: the seed whose split it is, when the
    run has several)."""
    scenarios = [s for s in SCENARIOS if any(r["scenario"] == s for r in aggregated)]
    caption = None
    if split:
        users = {row["scenario"]: row["users"] for row in split}
        caption = ("test users" + (f" (seed {seed})" if seed is not None else "") + ": "
                   ) + ", ".join(
            f"{SHORT[s]} {users[s]:,}" + (" (no column)" if users[s] == 0 else "")
            for s in SCENARIOS if s in users)
    table = Table(title=f"Cold-start results: {metrics[0]} / {metrics[1]} "
                        "(mean over seeds, ± sd)", caption=caption)
    table.add_column("learner", style="bold", no_wrap=True)
    for scenario in scenarios:
        table.add_column(SHORT[scenario], justify="right", no_wrap=True)
    index = {(r["learner"], r["scenario"], r["metric"]): r for r in aggregated}
    for learner in dict.fromkeys(r["learner"] for r in aggregated):
        cells = []
        for scenario in scenarios:
            parts = []
            for metric in metrics:
                r = index.get((learner, scenario, metric))
                parts.append("-" if r is None else f"{r['mean']:.3f}"
                             + (f"±{r['sd']:.3f}" if r["n_seeds"] > 1 else ""))
            cells.append(" / ".join(parts))
        table.add_row(learner, *cells)
    return table


def run(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML run config."),
    dataset: str | None = typer.Option(None, help="Data set name or path (default: synthetic)."),
    data_dir: Path | None = typer.Option(None, help="Folder with the data set's files."),
    learners: str | None = typer.Option(None, help="Comma-separated learners, e.g. maml-r,maml."),
    baselines: str | None = typer.Option(None, help="Comma-separated baselines ('' for none)."),
    seed: list[int] = typer.Option(None, "--seed", help="Seed(s); repeat for several."),
    epochs: int | None = typer.Option(None, help="Shortcut for --set learner.epochs=N."),
    out: Path = typer.Option(Path("runs/latest"), help="Run folder to write."),
    set_: list[str] = typer.Option(None, "--set", help="Override: section.field=value."),
) -> None:
    """Train the learners and baselines, evaluate every cold-start scenario, write a run
    folder (config.toml, results.json, checkpoints, plots, report.html)."""
    from metarec.experiment import run_experiment

    overrides = list(set_ or [])
    if dataset is not None:
        overrides.append(f"data.dataset={dataset!r}")
    if data_dir is not None:
        overrides.append(f"data.data_dir={str(data_dir)!r}")
    if learners is not None:
        overrides.append(f"learners={[x for x in learners.split(',') if x]!r}")
    if baselines is not None:
        overrides.append(f"baselines={[x for x in baselines.split(',') if x]!r}")
    if seed:
        overrides.append(f"seeds={list(seed)!r}")
    if epochs is not None:
        overrides.append(f"learner.epochs={epochs}")
    cfg = load_config(config, overrides)
    with console.status("starting") as status:
        def events(kind: str, payload: dict[str, Any]) -> None:
            if kind == "stage":
                status.update(payload["message"])
                console.log(payload["message"])
            elif kind == "epoch":
                val = payload.get("val_loss")
                status.update(f"{payload['learner']} seed {payload['seed']} epoch "
                              f"{payload['epoch']}: train {payload['train_loss']:.4f}"
                              + (f", val {val:.4f}" if val is not None else ""))

        result = run_experiment(cfg, out, events)
    console.print(_table(result.aggregated, split=result.split_summary,
                         seed=cfg.seeds[0] if len(cfg.seeds) > 1 else None))
    console.print(f"run folder: {out} (report.html, results.json); "
                  f"{result.timings['total']:.1f} s")


def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `metarec run`."),
    protocol: str = typer.Option("cold-start", help="cold-start (the run's scenarios) or "
                                 "prequential (time-ordered stream; see `metarec "
                                 "prequential --help` for its options)."),
    max_events: int | None = typer.Option(None, help="Prequential: stop after N events."),
    device: str | None = typer.Option(None, help="Cold-start: load the learners on cpu, "
                                      "cuda or auto (default: where they were trained, "
                                      "or the CPU when that device is missing)."),
) -> None:
    """Re-evaluate a saved run from its config and checkpoints."""
    if protocol == "prequential":
        from metarec.cli.online import prequential_command

        learner = None
        if (run_dir / "config.toml").is_file():
            config = load_config(run_dir / "config.toml")
            name = config.learners[0] if config.learners else "pretrain"
            learner = f"{name}-seed{config.seeds[0]}"
            if not (run_dir / "checkpoints" / learner).is_dir():
                learner = name  # a `metarec train` folder: checkpoints/<learner>/
            if not config.learners and not (run_dir / "checkpoints" / learner).is_dir():
                raise CheckpointError(f"{run_dir}: the run trained no learner (no learners "
                                      "and no pretrain checkpoint): nothing to evaluate "
                                      "prequentially")
        prequential_command(run_dir, learner=learner, max_events=max_events)
        return
    if protocol != "cold-start":
        raise ConfigError(f"unknown protocol {protocol!r}: use cold-start or prequential")
    from metarec.experiment import evaluate_run

    result = evaluate_run(run_dir, device=device)
    console.print(_table(result.aggregated))
