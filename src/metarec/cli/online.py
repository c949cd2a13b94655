"""``metarec prequential``: prequential (predict, then learn) evaluation of a saved
learner over a time-ordered stream, comparing static, online SGD and online
meta-adaptation. Also what ``metarec evaluate --protocol prequential`` calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from metarec.errors import ConfigError

console = Console(width=None if sys.stdout.isatty() else 160)


def prequential_command(
    checkpoint: Annotated[Path, typer.Argument(help="Run folder or saved learner folder.")],
    dataset: Annotated[str | None, typer.Option(
        help="Data set streamed in time order (name or path; default: the run's, else "
        "synthetic).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    learner: Annotated[str | None, typer.Option(
        help="Which of a run's checkpoints: a learner (maml-r: its lowest seed) or a "
        "checkpoint folder (maml-r-seed3); needed when several learners are saved.")
    ] = None,
    modes: Annotated[str, typer.Option(help="Comma-separated: static,sgd,meta.")
                     ] = "static,sgd,meta",
    start: Annotated[float, typer.Option(help="Warm-up: fraction of the stream learned "
                                         "before scoring starts.")] = 0.5,
    block_size: Annotated[int, typer.Option(help="Events predicted before learning them "
                                            "(1 = strict).")] = 1,
    update_every: Annotated[int, typer.Option(help="Meta-update period in events (meta "
                                              "mode; 0 = never).")] = 1000,
    max_events: Annotated[int | None, typer.Option(help="Stop after N events.")] = None,
    item_shrinkage: Annotated[float | None, typer.Option(
        help="Learn an offset per item from the stream, shrunk by this many pseudo-events "
        "(every mode; default: off).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write results JSON here.")] = None,
) -> None:
    """Prequential evaluation: every event is predicted before it is learned from."""
    from metarec.evaluation.prequential import run_prequential_modes

    if out is not None and out.is_dir():  # checked before the evaluation, not after it
        raise ConfigError(f"--out {out} is a folder: name the JSON file to write")

    records = run_prequential_modes(
        checkpoint, dataset, data_dir=data_dir, learner=learner,
        modes=[m.strip() for m in modes.split(",") if m.strip()], start=start,
        block_size=block_size, update_every=update_every, max_events=max_events,
        online=None if item_shrinkage is None else {"item_shrinkage": item_shrinkage})
    table = Table(title=f"Prequential on {records[0]['dataset'] if records else dataset}")
    for column in ("mode", "events", "mae", "rmse", "ndcg@10", "events/s"):
        table.add_column(column, justify="right")
    for r in records:
        table.add_row(r["mode"], str(r["events"]), f"{r['mae']:.4f}", f"{r['rmse']:.4f}",
                      f"{r['ndcg@10']:.4f}", f"{r['events_per_s']:.0f}")
    console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([{k: v for k, v in r.items() if k != "curve"}
                                   for r in records], indent=2))
