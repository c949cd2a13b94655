"""The real server: ``metarec serve`` under uvicorn in a subprocess on 127.0.0.1, and
durability: every acknowledged event survives ``kill -9``."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from serve_helpers import auth

from metarec.serve.store import EventStore


def test_real_server_round_trip(run_dir: Path, server_factory) -> None:
    server = server_factory(run_dir)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.post("/events", json={"user": "1", "item": "2", "rating": 4}).status_code \
            == 401
        stored = c.post("/events", json={"events": [
            {"user": "live", "item": str(i), "rating": 4.0} for i in range(1, 4)]},
            headers=auth())
        assert stored.status_code == 200 and stored.json()["stored"] == 3
        recs = c.get("/users/live/recommendations", params={"k": 5}).json()
        assert recs["source"] == "adapted" and len(recs["items"]) == 5
        assert c.get("/users/live").json()["events"] == 3
        assert "metarec_events_total 3" in c.get("/metrics").text
        assert c.get("/docs").status_code == 200


@pytest.mark.slow
def test_acknowledged_events_survive_kill_9(run_dir: Path, server_factory) -> None:
    """Writers with keyed events under load, the server killed: every acknowledged event
    is stored, and a client that resends what it is unsure of (the batch in flight, and
    one it had acknowledged) after the restart gets each event stored exactly once."""
    server = server_factory(run_dir)
    acknowledged: list[int] = []
    unsure: list[list[dict]] = []
    resent_acknowledged: list[int] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            n = 0
            while not stop.is_set():
                batch = [{"user": f"w{worker}-{n % 11}", "item": str(1 + (n + j) % 80),
                          "rating": float(1 + (n + j) % 5), "key": f"w{worker}-{n}-{j}"}
                         for j in range(5)]
                n += 1
                try:
                    response = c.post("/events", json={"events": batch}, headers=auth())
                except httpx.HTTPError:
                    unsure.append(batch)  # the server died mid-request: not acknowledged
                    return
                if response.status_code == 200:
                    acknowledged.extend(response.json()["ids"])
                    if n == 1:  # resent below, though acknowledged
                        unsure.append(batch)
                        resent_acknowledged.append(len(batch))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 300:
        threading.Event().wait(0.02)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(acknowledged) >= 300

    store = EventStore(f"sqlite:///{run_dir / 'service.db'}")
    missing = set(acknowledged) - store.event_ids()
    store.close()
    assert not missing, f"{len(missing)} acknowledged events lost"

    restarted = server_factory(run_dir)
    with httpx.Client(base_url=restarted.url, timeout=10) as c:
        before = c.get("/health").json()["events"]
        assert before >= len(acknowledged)
        assert c.get("/users/w0-0").json()["events"] > 0
        for batch in unsure:
            assert c.post("/events", json={"events": batch},
                          headers=auth()).status_code == 200
        after = c.get("/health").json()["events"]
    with sqlite3.connect(run_dir / "service.db") as db:
        keys = [k for (k,) in db.execute("SELECT event_key FROM events")]
    assert len(keys) == after and None not in keys  # every event stored has its key
    assert {e["key"] for batch in unsure for e in batch} <= set(keys)
    assert resent_acknowledged  # and storing them again changed nothing:
    assert after - before <= sum(map(len, unsure)) - sum(resent_acknowledged)
