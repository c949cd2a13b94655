"""``metarec datasets``: list the catalogue, fetch a data set, describe one.

Thin: each command calls :mod:`metarec.data.registry` / :mod:`metarec.data.download`
and prints. Project errors propagate; :func:`metarec.cli.main` prints them as one line.
The data layer (and so torch) is imported inside the commands, to keep ``--help`` fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False)
console = Console()

DataDir = Annotated[Path | None, typer.Option(
    "--data-dir", help="Folder holding the data sets (default: $METAREC_DATA or "
    "~/.cache/metarec); may also point straight at the unzipped files.")]


@app.command("list")
def list_datasets(
    data_dir: DataDir = None,
) -> None:
    """List the known data sets and whether each is on disk."""
    from metarec.data import registry

    table = Table(title="Data sets")
    for column in ("name", "size", "source", "licence", "cached"):
        table.add_column(column, overflow="fold")
    for info in registry.REGISTRY.values():
        if info.built_in:
            cached = "built in"
        else:
            folder = registry.local_path(info.name, data_dir)
            if folder is not None:
                cached = f"yes: {folder}"
            else:
                cached = "no (manual download)" if info.url is None else "no"
        table.add_row(info.name, info.size, info.source, info.licence, cached)
    console.print(table)


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="A registered data set, e.g. movielens-1m.")],
    data_dir: DataDir = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="Download from this URL instead (a mirror); the known checksum is "
        "still checked.")] = None,
) -> None:
    """Download, verify and unzip a data set into the cache (or --data-dir)."""
    from metarec.data import download, registry

    known = registry.get_info(name)
    already = None if known.built_in else registry.local_path(name, data_dir)
    if already is not None:
        console.print(f"{name} is already on disk: {already}")
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"fetching {name}", total=None)

        def report(received: int, total: int | None) -> None:
            bar.update(task, completed=received, total=total)

        folder = download.fetch(name, data_dir=data_dir, url=url, progress=report)
    console.print(f"{name} is in {folder}")


@app.command()
def info(
    name_or_path: Annotated[str, typer.Argument(
        metavar="NAME|PATH", help="A registered data set, or a file or folder.")],
    data_dir: DataDir = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the cold-start split.")] = 0,
    protocol: Annotated[str, typer.Option(
        "--protocol", help="Split protocol: 'melu' (new items by release year) or 'time' "
        "(for data sets without a year).")] = "melu",
    option: Annotated[list[str] | None, typer.Option(
        "--option", metavar="KEY=VALUE", help="A reader option, repeatable; the same as "
        "`--set data.options.KEY=VALUE` of `metarec run`, e.g. --option time_col=timestamp "
        "for a table.")] = None,
) -> None:
    """Load a data set; print its summary and the size of each cold-start scenario."""
    from metarec.data import registry
    from metarec.data.splits import SplitConfig, split_dataset

    split_config = SplitConfig(protocol=protocol, seed=seed)  # checked before loading
    options = _reader_options(name_or_path, option or [])
    dataset = registry.load_dataset(name_or_path, data_dir=data_dir, **options)
    summary = Table(title=f"Data set {dataset.name}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value", overflow="fold")
    for key, value in dataset.summary().items():
        summary.add_row(key, _format(value))
    for note in dataset.notes:
        summary.add_row("note", note)
    console.print(summary)

    split = split_dataset(dataset, split_config)
    scenarios = Table(title=f"Cold-start scenarios ({protocol} protocol, seed {seed})")
    columns = ("scenario", "users", "support_ratings", "query_ratings")
    for column in columns:
        scenarios.add_column(column, justify="left" if column == "scenario" else "right")
    for row in split.summary():
        scenarios.add_row(*(_format(row.get(column, "")) for column in columns))
    console.print(scenarios)
    note = split.empty_note()
    if note:
        console.print(f"note: {note}")


def _reader_options(dataset: str, pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as the reader options of ``dataset``, read and checked as
    ``--set data.options.KEY=VALUE`` of ``metarec run`` is."""
    from metarec.config import read_config_values, reader_options
    from metarec.errors import ConfigError

    for pair in pairs:
        if "=" not in pair or not pair.partition("=")[0].strip():
            raise ConfigError(f"--option {pair!r} must look like KEY=VALUE")
    values = read_config_values(None, [f"options.{pair}" for pair in pairs])
    return reader_options(dataset, dict(values.get("options", {})), "--option")


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
