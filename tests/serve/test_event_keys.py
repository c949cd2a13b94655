"""Idempotent events: a retried event with its key is answered from the database and not
stored or learned twice; a key reused for another event is refused; a database written
before events had keys gains the column and keeps its events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import TOKEN, auth

from metarec.serve.app import ServeSettings, create_app
from metarec.serve.store import EventConflict, EventStore, NewEvent


def client(run_dir: Path) -> TestClient:
    return TestClient(create_app(ServeSettings(run_dir=run_dir, token=TOKEN)))


def _snapshot(c: TestClient) -> dict:
    return c.app.state.holder["state"].snapshot()  # type: ignore[attr-defined]


EVENTS = [{"user": "alice", "item": "12", "rating": 5, "timestamp": 100.0, "key": "a-1"},
          {"user": "alice", "item": "40", "rating": 2, "timestamp": 101.0, "key": "a-2"}]


def test_a_retried_batch_is_stored_and_learned_once(run_dir: Path, tmp_path: Path) -> None:
    with client(run_dir) as c:
        first = c.post("/events", json={"events": EVENTS}, headers=auth()).json()
        again = c.post("/events", json={"events": EVENTS}, headers=auth()).json()
        assert first == {"stored": 2, "repeated": 0, "ids": [1, 2]}
        assert again == {"stored": 0, "repeated": 2, "ids": [1, 2]}
        # A batch half retried, half new: only the new event is stored.
        mixed = c.post("/events", json={"events": [
            EVENTS[1], {"user": "alice", "item": "7", "rating": 4, "key": "a-3"}]},
            headers=auth()).json()
        assert mixed == {"stored": 1, "repeated": 1, "ids": [2, 3]}
        assert c.get("/users/alice").json()["events"] == 3
        assert c.get("/health").json()["events"] == 3
        state = _snapshot(c)
        recommendations = c.get("/users/alice/recommendations?k=5").json()
    # The same as a service that saw each event once.
    once = tmp_path / "once"
    once.mkdir()
    (once / "checkpoints").symlink_to(run_dir / "checkpoints")
    (once / "config.toml").write_text((run_dir / "config.toml").read_text())
    with client(once) as c:
        c.post("/events", json={"events": [
            *EVENTS, {"user": "alice", "item": "7", "rating": 4, "key": "a-3"}]},
            headers=auth())
        assert _snapshot(c)["alice"]["items"] == state["alice"]["items"]
        assert c.get("/users/alice/recommendations?k=5").json() == recommendations


def test_a_retry_without_a_timestamp_matches_the_time_of_first_arrival(
        run_dir: Path) -> None:
    event = {"user": "bob", "item": "3", "rating": 4, "key": "b-1"}
    with client(run_dir) as c:
        assert c.post("/events", json=event, headers=auth()).json()["ids"] == [1]
        assert c.post("/events", json=event, headers=auth()).json() == {
            "stored": 0, "repeated": 1, "ids": [1]}
        assert c.get("/users/bob").json()["events"] == 1


@pytest.mark.parametrize("change", [{"rating": 4}, {"item": "13"}, {"user": "carol"},
                                    {"timestamp": 99.0}])
def test_a_key_reused_for_another_event_is_409_and_nothing_is_stored(
        run_dir: Path, change: dict) -> None:
    with client(run_dir) as c:
        c.post("/events", json=EVENTS[0], headers=auth())
        response = c.post("/events", json={"events": [
            {"user": "dave", "item": "5", "rating": 3, "key": "d-1"},
            {**EVENTS[0], **change}]}, headers=auth())
        assert response.status_code == 409
        assert "'a-1' is stored already" in response.json()["detail"]
        assert c.get("/health").json()["events"] == 1
        assert c.get("/users/dave").json()["events"] == 0


def test_a_key_given_twice_in_one_batch_is_422(run_dir: Path) -> None:
    with client(run_dir) as c:
        response = c.post("/events", json={"events": [EVENTS[0], {**EVENTS[1], "key": "a-1"}]},
                          headers=auth())
        assert response.status_code == 422
        [error] = [e for e in response.json()["detail"] if "EventBatch" in e["loc"]]
        assert error["loc"] == ["body", "EventBatch", "events"]
        assert "'a-1' is given twice" in error["msg"]
        assert c.get("/health").json()["events"] == 0


@pytest.mark.parametrize("key", ["", "x" * 257, "a\x00b", 7])
def test_a_bad_key_is_422(run_dir: Path, key: object) -> None:
    with client(run_dir) as c:
        response = c.post("/events", json={**EVENTS[0], "key": key}, headers=auth())
        assert response.status_code == 422
        assert "key" in response.json()["detail"][0]["loc"]


def test_the_store_refuses_a_key_twice_in_one_call(tmp_path: Path) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(EventConflict, match="'k' is given twice"):
        store.add_events([NewEvent("u", "i", 4.0, 1.0, "k"), NewEvent("u", "j", 3.0, 2.0, "k")])
    assert store.event_ids() == set()
    store.close()


def test_a_key_stored_by_another_process_meanwhile_is_a_retry(tmp_path: Path,
                                                              monkeypatch) -> None:
    """Another process commits the same key after this one looked for it: the unique
    index refuses the insert, and the batch is looked at again."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store, other = EventStore(url), EventStore(url)
    original = EventStore._ensure
    raced: list[bool] = []

    def ensure(self, session, table, features):  # type: ignore[no-untyped-def]
        if self is store and not raced:
            raced.append(True)
            other.add_events([NewEvent("u", "i", 4.0, 1.0, "k")])
        return original(self, session, table, features)

    monkeypatch.setattr(EventStore, "_ensure", ensure)
    stored, ids = store.add_events([NewEvent("u", "i", 4.0, 1.0, "k"),
                                    NewEvent("u", "j", 3.0, 2.0, "k2")])
    assert raced and [(e.item, e.id) for e in stored] == [("j", 2)] and ids == [1, 2]
    assert [e.item for e in store.iter_events()] == ["i", "j"]
    store.close()
    other.close()


def test_a_database_from_before_keys_gains_them_and_keeps_its_events(run_dir: Path) -> None:
    path = run_dir / "service.db"
    with sqlite3.connect(path) as db:  # the schema events had until 2026-12-05
        db.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, external_id VARCHAR(256), features JSON);
            CREATE TABLE items (id INTEGER PRIMARY KEY, external_id VARCHAR(256), features JSON);
            CREATE TABLE events (id INTEGER PRIMARY KEY,
                user_id INTEGER REFERENCES users(id), item_id INTEGER REFERENCES items(id),
                rating FLOAT, timestamp FLOAT);
            CREATE UNIQUE INDEX ix_users_external_id ON users (external_id);
            CREATE UNIQUE INDEX ix_items_external_id ON items (external_id);
            CREATE INDEX ix_events_user_id ON events (user_id);
            INSERT INTO users VALUES (1, 'old', '{}');
            INSERT INTO items VALUES (1, '12', '{}');
            INSERT INTO events VALUES (1, 1, 1, 5.0, 10.0);
        """)
    with client(run_dir) as c:
        assert c.get("/users/old").json()["events"] == 1
        for _ in range(2):
            assert c.post("/events", json=EVENTS[0], headers=auth()).json()["ids"] == [2]
        assert c.get("/health").json()["events"] == 2
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO events (user_id, item_id, rating, timestamp, event_key) "
                   "VALUES (1, 1, 4.0, 11.0, 'a-1')")
