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


def test_a_retried_event_is_stored_once_on_postgres(run_dir: Path, postgres_url: str) -> None:
    settings = ServeSettings(run_dir=run_dir, db_url=postgres_url, token=TOKEN)
    event = {"user": "pg-retry", "item": "3", "rating": 4, "key": "pg-retry-1"}
    with TestClient(create_app(settings)) as c:
        first = c.post("/events", json=event, headers=auth()).json()
        again = c.post("/events", json=event, headers=auth()).json()
        assert (first["stored"], again["stored"], again["ids"]) == (1, 0, first["ids"])
        conflict = c.post("/events", json={**event, "rating": 5}, headers=auth())
        assert conflict.status_code == 409
        assert c.get("/users/pg-retry").json()["events"] == 1


def test_a_database_from_before_keys_gains_them_on_postgres(postgres_url: str) -> None:
    from sqlalchemy import create_engine, inspect, text

    from metarec.serve.store import EventStore, NewEvent

    schema_url = postgres_url  # tables in a schema of their own, beside the other tests'
    engine = create_engine(schema_url)
    with engine.begin() as db:
        db.execute(text("DROP SCHEMA IF EXISTS before_keys CASCADE; CREATE SCHEMA before_keys;"
                        "SET search_path TO before_keys;"
                        "CREATE TABLE users (id SERIAL PRIMARY KEY, external_id VARCHAR(256) "
                        "UNIQUE, features JSON);"
                        "CREATE TABLE items (id SERIAL PRIMARY KEY, external_id VARCHAR(256) "
                        "UNIQUE, features JSON);"
                        "CREATE TABLE events (id SERIAL PRIMARY KEY, user_id INTEGER "
                        "REFERENCES users(id), item_id INTEGER REFERENCES items(id), "
                        "rating FLOAT, timestamp FLOAT);"
                        "INSERT INTO users (external_id, features) VALUES ('old', '{}');"
                        "INSERT INTO items (external_id, features) VALUES ('12', '{}');"
                        "INSERT INTO events (user_id, item_id, rating, timestamp) "
                        "VALUES (1, 1, 5.0, 10.0);"))
    engine.dispose()
    separator = "&" if "?" in schema_url else "?"
    store = EventStore(f"{schema_url}{separator}options=-csearch_path%3Dbefore_keys")
    try:
        assert "event_key" in {c["name"] for c in inspect(store.engine).get_columns("events")}
        for _ in range(2):
            stored, ids = store.add_events([NewEvent("old", "12", 4.0, 11.0, "k")])
        assert (stored, ids) == ([], [2])
        assert [(e.user, e.rating) for e in store.iter_events()] == [("old", 5.0), ("old", 4.0)]
    finally:
        store.close()
        engine = create_engine(schema_url)
        with engine.begin() as db:
            db.execute(text("DROP SCHEMA before_keys CASCADE"))
        engine.dispose()
