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
        # Adding a timestamp the first had not is another event, not a retry.
        assert c.post("/events", json={**event, "timestamp": 5.0},
                      headers=auth()).status_code == 409


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


@pytest.mark.parametrize("path, body, field", [
    ("/events", '{"user": "a", "item": "1", "rating": 3, "key": "k\\ud800"}', "key"),
    ("/events", '{"user": "\\udc00", "item": "1", "rating": 3}', "user"),
    ("/events", '{"user": "a", "item": "\\ud800", "rating": 3}', "item"),
    ("/items", '{"id": "i", "features": {"rate": "\\ud800"}}', "rate"),
    ("/items", '{"id": "i", "features": {"\\ud800": "PG"}}', "features"),
])
def test_an_unpaired_surrogate_is_422_not_500(run_dir: Path, path: str, body: str,
                                             field: str) -> None:
    """JSON may escape half a surrogate pair, which no database can store as UTF-8: it
    had failed inside the store (500), and the 422 naming it inside the error handler."""
    with client(run_dir) as c:
        response = c.post(path, content=body.encode(),
                          headers={**auth(), "Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert field in response.json()["detail"][0]["loc"]
        assert c.get("/health").json()["events"] == 0


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


def test_a_batch_raced_again_and_again_still_stores_each_event_once(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """Each of two looks is overtaken by another process's commit of one of the batch's
    keys (the first version looked again only once): the batch looks again until
    nothing is left to race for."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store, other = EventStore(url), EventStore(url)
    batch = [NewEvent("u", str(i), 4.0, float(i), f"k{i}") for i in range(3)]
    original = EventStore._ensure
    overtaken = iter([batch[0], batch[2]])

    def ensure(self, session, table, features):  # type: ignore[no-untyped-def]
        if self is store and table.__name__ == "UserRow":
            racing = next(overtaken, None)
            if racing is not None:
                other.add_events([racing])
        return original(self, session, table, features)

    monkeypatch.setattr(EventStore, "_ensure", ensure)
    stored, ids = store.add_events(batch)
    assert next(overtaken, None) is None  # both races ran
    assert [e.item for e in stored] == ["1"] and ids == [1, 3, 2]
    assert [e.item for e in store.iter_events()] == ["0", "2", "1"]
    store.close()
    other.close()


def test_two_processes_adding_the_keys_to_an_old_database_at_once(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """The second sees no column, then fails to add it because the first just did: it
    opens the database all the same."""
    path = tmp_path / "old.db"
    _old_database(path)
    url = f"sqlite:///{path}"
    original = EventStore._has_key_column
    looks: list[bool] = []

    def has_key_column(self):  # type: ignore[no-untyped-def]
        looks.append(original(self))
        if len(looks) == 1:  # another process adds the keys right after this look
            monkeypatch.setattr(EventStore, "_has_key_column", original)
            EventStore(url).close()
            return False
        return looks[-1]

    monkeypatch.setattr(EventStore, "_has_key_column", has_key_column)
    store = EventStore(url)
    assert store.add_events([NewEvent("old", "12", 4.0, 11.0, "k")])[1] == [2]
    store.close()


def test_a_start_interrupted_between_column_and_index_is_finished_next_time(
        tmp_path: Path) -> None:
    """SQLite runs ALTER TABLE outside a transaction: a start killed after it had left a
    column without its index, and every later start failed on the column."""
    path = tmp_path / "old.db"
    _old_database(path)
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE events ADD COLUMN event_key VARCHAR(256)")
    db.close()
    store = EventStore(f"sqlite:///{path}")
    for _ in range(2):
        assert store.add_events([NewEvent("old", "12", 4.0, 11.0, "k")])[1] == [2]
    store.close()
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO events (user_id, item_id, rating, timestamp, event_key) "
                   "VALUES (1, 1, 4.0, 12.0, 'k')")


def _old_database(path: Path) -> None:
    """A service database as written before events had keys (until 2026-12-05)."""
    with sqlite3.connect(path) as db:
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
    db.close()


def test_a_database_from_before_keys_gains_them_and_keeps_its_events(run_dir: Path) -> None:
    path = run_dir / "service.db"
    _old_database(path)
    with client(run_dir) as c:
        assert c.get("/users/old").json()["events"] == 1
        for _ in range(2):
            assert c.post("/events", json=EVENTS[0], headers=auth()).json()["ids"] == [2]
        assert c.get("/health").json()["events"] == 2
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO events (user_id, item_id, rating, timestamp, event_key) "
                   "VALUES (1, 1, 4.0, 11.0, 'a-1')")
