"""``metarec serve RUN_DIR``: run the recommendation service (FastAPI + uvicorn).

Thin: parse options, build :class:`~metarec.serve.app.ServeSettings`, run uvicorn. The
bearer token of write/admin endpoints comes from the ``METAREC_TOKEN`` environment
variable (never from the command line, where other users could read it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def serve_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder or saved learner folder "
                                            "(learner.json + weights.safetensors).")],
    db: Annotated[str | None, typer.Option(
        "--db", help="Database URL: sqlite:///PATH (default RUN_DIR/service.db, WAL) or "
        "postgresql+psycopg://USER:PASS@HOST/DB.")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    dataset: Annotated[str | None, typer.Option(
        help="Data set that seeds an empty catalogue (default: the run's, else "
        "synthetic).")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir",
                                                  help="Folder holding data sets.")] = None,
    learner: Annotated[str | None, typer.Option(
        help="Which of RUN_DIR's checkpoints: a learner (maml-r: its lowest seed) or a "
        "checkpoint folder (maml-r-seed3); needed when several learners are saved.")
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1 << 20,
    item_shrinkage: Annotated[float | None, typer.Option(
        help="Learn an offset per item from the events, shrunk by this many pseudo-events "
        "(default: off).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve recommendations adapted to each user's events (OpenAPI docs at /docs)."""
    import uvicorn

    from metarec.errors import CheckpointError
    from metarec.serve.app import ServeSettings, build_state, create_app

    if not run_dir.exists():
        raise CheckpointError(f"{run_dir}: no such run folder")
    settings = ServeSettings(run_dir=run_dir, db_url=db, dataset=dataset, data_dir=data_dir,
                             learner=learner, token=os.environ.get("METAREC_TOKEN") or None,
                             max_body_bytes=max_body_bytes, item_shrinkage=item_shrinkage)
    if settings.token is None:
        typer.echo("warning: METAREC_TOKEN is not set: write and admin endpoints answer 401",
                   err=True)
    # Built here, not at the app's start-up: a bad checkpoint, database or data set is a
    # one-line error (exit 2), not a uvicorn traceback.
    state = build_state(settings)
    uvicorn.run(create_app(settings, state), host=host, port=port, log_level=log_level,
                access_log=False)
