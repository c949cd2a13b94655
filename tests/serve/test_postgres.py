"""The service on PostgreSQL. Runs when ``METAREC_TEST_POSTGRES_URL`` names a server
(``postgresql+psycopg://USER:PASS@HOST:PORT/DB``, a scratch database: tables are created
in it), or when ``initdb``/``pg_ctl`` are on PATH to start a throwaway cluster in a
temporary folder; skips otherwise, saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import TOKEN, auth, free_port

from metarec.serve.app import ServeSettings, create_app


def _as_postgres(command: list[str]) -> list[str]:
    # initdb refuses to run as root: run the cluster as the postgres user when we are root.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start a PostgreSQL cluster")
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("METAREC_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'metarec[postgres]')")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL: set METAREC_TEST_POSTGRES_URL or put initdb/pg_ctl on "
                    "PATH")
    folder = tmp_path_factory.mktemp("pg")
    data, sockets = folder / "data", folder / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
        folder.chmod(0o755)
        for parent in folder.parents:
            if parent == Path(tmp_path_factory.getbasetemp()).parent.parent:
                break
            parent.chmod(parent.stat().st_mode | 0o011)
    port = free_port()
    run = dict(capture_output=True, text=True, timeout=60)
    init = subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "metarec",
                                        "--auth=trust", "-E", "UTF8"]), **run)
    if init.returncode:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    start = subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-w", "-l",
                                         str(folder / "log"), "-o",
                                         f"-p {port} -k {sockets} -h 127.0.0.1",
                                         "start"]), **run)
    if start.returncode:
        pytest.skip(f"pg_ctl start failed: {start.stderr.strip()[-300:]}")
    try:
        yield f"postgresql+psycopg://metarec@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                       **run)


def test_service_on_postgres_keeps_events_across_restart(run_dir: Path,
                                                         postgres_url: str) -> None:
    settings = ServeSettings(run_dir=run_dir, db_url=postgres_url, token=TOKEN)
    events = [{"user": f"pg{i % 3}", "item": str(1 + i % 80), "rating": float(1 + i % 5),
               "timestamp": float(i)} for i in range(30)]
    with TestClient(create_app(settings)) as c:
        assert c.post("/events", json={"events": events}, headers=auth()).status_code == 200
        before = c.app.state.holder["state"].snapshot()  # type: ignore[attr-defined]
        recs = c.get("/users/pg0/recommendations").json()
        assert recs["source"] == "adapted"
    with TestClient(create_app(settings)) as c:
        assert c.app.state.holder["state"].snapshot() == before  # type: ignore[attr-defined]
        assert c.get("/users/pg0/recommendations").json() == recs
        assert c.get("/users/pg1").json()["events"] == 10
