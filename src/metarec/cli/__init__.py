"""Command-line interface (typer). Thin: parse, call the library, print.

Each command group lives in its own module and is registered here. A
:class:`~metarec.errors.MetarecError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from metarec import __version__
from metarec.errors import MetarecError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="metarec: meta-learning recommendation.")
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"metarec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _command(name: str, function: Callable[..., Any]) -> None:
    """Register ``function`` as command ``name``; the command list shows the first
    paragraph of its docstring on one line (typer would keep the docstring's breaks)."""
    first = (function.__doc__ or "").strip().split("\n\n")[0]
    app.command(name, short_help=" ".join(first.split()))(function)


def _register() -> None:
    from metarec.cli import datasets

    app.add_typer(datasets.app, name="datasets", help="List, fetch and describe data sets.")
    from metarec.cli import run

    _command("run", run.run)
    _command("evaluate", run.evaluate)
    from metarec.cli import train

    _command("train", train.train)
    from metarec.cli import online, serve

    _command("serve", serve.serve_command)
    _command("prequential", online.prequential_command)
    from metarec.cli import transfer

    _command("transfer", transfer.transfer)
    _command("distill", transfer.distill)


_register()


def _usage_errors() -> tuple[type[Exception], ...]:
    """click's ``ClickException`` (usage errors), and the one of the copy of click that
    newer typers carry (``typer._click``), whichever this install has."""
    import click

    classes: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        pass
    else:
        classes.append(ClickException)
    return tuple(classes)


def main() -> None:
    """Console entry point: run the app, turning project errors into one line + exit 2,
    usage errors into click's short message (exit 2) and Ctrl-C into exit 130."""
    try:
        code = app(standalone_mode=False)
    except MetarecError as error:
        err_console.print(f"error: {error}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except _usage_errors() as error:
        error.show()  # type: ignore[attr-defined]
        sys.exit(error.exit_code)  # type: ignore[attr-defined]
    # Without standalone mode click returns the code of an Exit (130 for Ctrl-C) instead
    # of raising it; a command's own result is None.
    if isinstance(code, int) and not isinstance(code, bool) and code:
        if code == 130:
            err_console.print("interrupted", highlight=False)
        sys.exit(code)


if __name__ == "__main__":
    main()
