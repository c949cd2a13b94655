"""The service through FastAPI's TestClient: auth, validation, limits, cold start, new
items, metrics, checkpoint reload and rebuilding the state from the database."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import TOKEN, auth

from metarec.serve.app import MAX_BATCH, MAX_MEMBERS, ServeSettings, create_app


def client(run_dir: Path, **options: object) -> TestClient:
    settings = ServeSettings(run_dir=run_dir, token=TOKEN, **options)  # type: ignore[arg-type]
    return TestClient(create_app(settings))


def test_fresh_service_seeds_catalogue_from_run_dataset(run_dir: Path) -> None:
    with client(run_dir) as c:
        health = c.get("/health").json()
    assert health["status"] == "ok"
    assert (health["users"], health["items"], health["events"]) == (120, 80, 0)
    assert (run_dir / "service.db").is_file()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic dGVzdA=="},
                                     {"Authorization": "Bearer "}, {"Authorization": " "},
                                     {"Authorization": TOKEN}])
def test_write_endpoints_need_the_token(run_dir: Path, headers: dict) -> None:
    with client(run_dir) as c:
        event = {"user": "1", "item": "2", "rating": 4}
        assert c.post("/events", json=event, headers=headers).status_code == 401
        assert c.post("/users", json={"id": "u"}, headers=headers).status_code == 401
        assert c.post("/items", json={"id": "i"}, headers=headers).status_code == 401
        assert c.post("/admin/reload", headers=headers).status_code == 401
        assert c.get("/users/1").json()["events"] == 0


@pytest.mark.parametrize("token", [None, ""])
def test_without_a_configured_token_writes_are_refused(run_dir: Path, token) -> None:
    with TestClient(create_app(ServeSettings(run_dir=run_dir, token=token))) as c:
        for headers in (auth(), {"Authorization": "Bearer "}, {"Authorization": "Bearer"}):
            response = c.post("/events", json={"user": "1", "item": "2", "rating": 4},
                              headers=headers)
            assert response.status_code == 401
            assert "METAREC_TOKEN" in response.json()["detail"]


def test_an_empty_token_in_the_environment_turns_writes_off(run_dir: Path,
                                                            monkeypatch) -> None:
    """``METAREC_TOKEN=`` had accepted an empty bearer token (anyone could write)."""
    from metarec.serve.app import app_from_env

    monkeypatch.setenv("METAREC_RUN_DIR", str(run_dir))
    monkeypatch.setenv("METAREC_TOKEN", "")
    with TestClient(app_from_env()) as c:
        response = c.post("/events", json={"user": "1", "item": "2", "rating": 4},
                          headers={"Authorization": "Bearer "})
        assert response.status_code == 401
        assert "METAREC_TOKEN" in response.json()["detail"]
        assert c.get("/health").json()["events"] == 0


@pytest.mark.parametrize("body, field", [
    ({"user": "1", "item": "2", "rating": 40}, "rating"),
    ({"user": "1", "item": "2"}, "rating"),
    ({"item": "2", "rating": 3}, "user"),
    ({"user": "", "item": "2", "rating": 3}, "user"),
    ({"user": "1", "item": "2", "rating": 3, "timestamp": "soon"}, "timestamp"),
    ({"user": True, "item": "2", "rating": 3}, "user"),
    ({"user": "1", "item": "2", "rating": True}, "rating"),
    ({"user": "1", "item": "2", "rating": "4"}, "rating"),
    ({"user": "x/y", "item": "2", "rating": 3}, "user"),
    ({"user": "1", "item": "a\x00b", "rating": 3}, "item"),
])
def test_invalid_event_is_422_naming_the_field(run_dir: Path, body: dict, field: str) -> None:
    with client(run_dir) as c:
        response = c.post("/events", json=body, headers=auth())
    assert response.status_code == 422
    assert field in response.json()["detail"][0]["loc"]


def test_item_ids_may_hold_a_slash_user_ids_may_not(run_dir: Path) -> None:
    """Only a user id names a path (GET /users/{id}); ISBNs and URLs are fine item ids."""
    with client(run_dir) as c:
        assert c.post("/items", json={"id": "isbn/0-19-852663-6"},
                      headers=auth()).status_code == 200
        assert c.post("/events", json={"user": "u1", "item": "http://x.org/item/7",
                                       "rating": 4}, headers=auth()).status_code == 200
        refused = c.post("/users", json={"id": "a/b"}, headers=auth())
        assert refused.status_code == 422 and "id" in refused.json()["detail"][0]["loc"]
        assert c.get("/users/u1").json()["events"] == 1


def test_limits_on_batch_size_body_size_and_k(run_dir: Path) -> None:
    event = {"user": "1", "item": "2", "rating": 3}
    with client(run_dir, max_body_bytes=200_000) as c:
        too_many = c.post("/events", json={"events": [event] * (MAX_BATCH + 1)},
                          headers=auth())
        assert too_many.status_code == 422
        assert any("events" in e["loc"] for e in too_many.json()["detail"])
        huge = c.post("/items", content=b'{"id": "' + b"x" * 300_000 + b'"}',
                      headers={**auth(), "Content-Type": "application/json"})
        assert huge.status_code == 413
        assert c.get("/users/1/recommendations?k=0").status_code == 422
        assert c.get("/users/1/recommendations?k=100000").status_code == 422
        assert c.get("/users/1").json()["events"] == 0


def test_cold_start_paths_and_adaptation(run_dir: Path) -> None:
    with client(run_dir) as c:
        unknown = c.get("/users/stranger/recommendations?k=5")
        assert unknown.status_code == 200 and unknown.json()["source"] == "popularity"
        assert c.get("/users/stranger").json() == {
            "user": "stranger", "known": False, "features": None, "events": 0,
            "support_size": 0, "last_event_time": None, "last_adaptation": None}
        seeded = c.get("/users/1/recommendations?k=5").json()
        assert seeded["source"] == "features" and len(seeded["items"]) == 5

        events = [{"user": "newbie", "item": str(i), "rating": 5.0 if i % 2 else 1.0,
                   "timestamp": 1000.0 + i} for i in range(1, 7)]
        stored = c.post("/events", json={"events": events}, headers=auth()).json()
        assert stored["stored"] == 6 and stored["ids"] == sorted(stored["ids"])
        recs = c.get("/users/newbie/recommendations?k=80").json()
        assert recs["source"] == "adapted"
        assert not {r["item"] for r in recs["items"]} & {str(i) for i in range(1, 7)}
        assert len(recs["items"]) == 80 - 6
        info = c.get("/users/newbie").json()
        assert info["events"] == 6 and info["last_event_time"] == 1006.0
        assert info["last_adaptation"] is not None
        # With exclude_seen=false the rated items come back too.
        every = c.get("/users/newbie/recommendations?k=80&exclude_seen=false").json()
        assert len(every["items"]) == 80
        # Popularity: the checkpoint's training ratings per item plus committed events.
        state = c.app.state.holder["state"]  # type: ignore[attr-defined]
        counts = np.bincount(state.learner.known_.item, minlength=len(state.items.raw))
        for i in range(1, 7):
            counts[state.items.index[str(i)]] += 1
        popular = c.get("/users/stranger/recommendations?k=6").json()["items"]
        order = np.argsort(-counts, kind="stable")[:6]
        assert popular == [{"item": state.items.raw[i], "score": float(counts[i])}
                           for i in order]
        assert popular[0]["score"] > 1


def test_new_item_is_recommendable_at_once(run_dir: Path) -> None:
    with client(run_dir) as c:
        created = c.post("/items", json={"id": "fresh", "features": {
            "genres": ["Drama", "Unknown-genre"], "rate": "R", "year": 1999}}, headers=auth())
        assert created.json() == {"id": "fresh", "created": True}
        recs = c.get("/users/1/recommendations?k=1000").json()["items"]
        assert "fresh" in {r["item"] for r in recs} and len(recs) == 81
        again = c.post("/items", json={"id": "fresh", "features": {"rate": "G"}},
                       headers=auth())
        assert again.json()["created"] is False


def test_registered_user_gets_feature_recommendations(run_dir: Path) -> None:
    with client(run_dir) as c:
        c.post("/users", json={"id": "f1", "features": {"gender": "F", "age": "25",
                                                        "occupation": "3"}}, headers=auth())
        c.post("/users", json={"id": "m1", "features": {"gender": "M", "age": "56",
                                                        "occupation": "9"}}, headers=auth())
        f1 = c.get("/users/f1/recommendations?k=80").json()
        m1 = c.get("/users/m1/recommendations?k=80").json()
    assert f1["source"] == m1["source"] == "features"
    assert [r["score"] for r in f1["items"]] != [r["score"] for r in m1["items"]]


def test_metrics_and_docs(run_dir: Path) -> None:
    with client(run_dir) as c:
        c.post("/events", json={"user": "9", "item": "3", "rating": 4}, headers=auth())
        c.get("/users/9/recommendations")
        text = c.get("/metrics").text
        assert c.get("/docs").status_code == 200
        assert "/events" in c.get("/openapi.json").json()["paths"]
    assert 'metarec_requests_total{method="POST",route="/events",status="200"} 1' in text
    assert "metarec_events_total 1" in text
    assert "metarec_adaptations_total 1" in text
    assert 'metarec_request_seconds_count{method="GET",route="/users/{user_id}/' \
           'recommendations"} 1' in text


def test_a_request_that_fails_is_counted_as_a_500(run_dir: Path, monkeypatch) -> None:
    """An exception inside a route had left the request out of /metrics."""
    from metarec.serve.state import ServiceState

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(ServiceState, "recommend", broken)
    app = create_app(ServeSettings(run_dir=run_dir, token=TOKEN))
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/users/9/recommendations").status_code == 500
        text = c.get("/metrics").text
    assert ('metarec_requests_total{method="GET",route="/users/{user_id}/recommendations",'
            'status="500"} 1') in text


def test_the_last_event_time_is_the_latest_whatever_the_arrival_order(
        run_dir: Path) -> None:
    with client(run_dir) as c:
        c.post("/events", json={"user": "bob", "item": "1", "rating": 5,
                                "timestamp": 2e9}, headers=auth())
        c.post("/events", json={"events": [{"user": "bob", "item": str(2 + i), "rating": 3,
                                            "timestamp": 1e9 + i} for i in range(3)]},
               headers=auth())
        assert c.get("/users/bob").json()["last_event_time"] == 2e9


def test_state_rebuilt_from_database_equals_state_before(run_dir: Path) -> None:
    events = [{"user": f"u{i % 7}", "item": str(1 + (i * 13) % 80), "rating": float(1 + i % 5),
               "timestamp": float(i)} for i in range(200)]
    with client(run_dir) as c:
        for start in range(0, 200, 50):
            c.post("/events", json={"events": events[start:start + 50]}, headers=auth())
        c.post("/items", json={"id": "late", "features": {"rate": "PG"}}, headers=auth())
        before = c.app.state.holder["state"].snapshot()  # type: ignore[attr-defined]
        recs_before = [c.get(f"/users/u{u}/recommendations?k=10").json() for u in range(7)]
    with client(run_dir) as c:
        after = c.app.state.holder["state"].snapshot()  # type: ignore[attr-defined]
        recs_after = [c.get(f"/users/u{u}/recommendations?k=10").json() for u in range(7)]
        assert c.get("/health").json()["items"] == 81
    assert after == before
    assert before["u0"]["num_events"] == 29 and len(before["u0"]["items"]) == 29
    assert recs_after == recs_before


@pytest.mark.parametrize("item_shrinkage", [None, 1.0])
def test_reload_swaps_checkpoint_and_keeps_users(run_dir: Path, tmp_path: Path,
                                                 item_shrinkage: float | None) -> None:
    with client(run_dir, item_shrinkage=item_shrinkage) as c:
        c.post("/events", json={"events": [{"user": "r", "item": str(i), "rating": 4}
                                           for i in range(1, 5)]}, headers=auth())
        before = c.get("/users/r/recommendations").json()
        reloaded = c.post("/admin/reload", json={"path": str(run_dir)}, headers=auth())
        assert reloaded.json() == {"reloaded": "maml-r", "learner": "maml-r"}
        assert c.get("/users/r").json()["events"] == 4
        assert c.get("/users/r/recommendations").json() == before
        missing = c.post("/admin/reload", json={"path": str(tmp_path / "nope")},
                         headers=auth())
        assert missing.status_code == 400 and "no saved learner" in missing.json()["detail"]
        assert c.get("/metrics").text.count("metarec_reloads_total 1") == 1


def test_reload_to_another_checkpoint_learns_the_item_offsets_again(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    import torch

    from metarec.learners.base import Learner, find_saved_learner

    checkpoint = find_saved_learner(run_dir)
    fresh = tmp_path / "fresh"  # the same run with other weights
    shutil.copytree(run_dir, fresh)
    (fresh / "service.db").unlink(missing_ok=True)
    other = Learner.load(checkpoint)
    with torch.no_grad():
        for weights in other.model.parameters():
            weights.add_(0.05)
    other.save(fresh / checkpoint.relative_to(run_dir))
    events = {"events": [{"user": f"u{n % 3}", "item": str(n), "rating": 1 + n % 5}
                         for n in range(1, 13)]}
    path = "/users/u1/recommendations?k=30"
    with client(run_dir, item_shrinkage=1.0) as c:
        c.post("/events", json=events, headers=auth())
        before = c.get(path).json()
        c.post("/admin/reload", json={"path": str(fresh / checkpoint.relative_to(run_dir))},
               headers=auth())
        reloaded = c.get(path).json()
    with client(fresh, item_shrinkage=1.0) as c:  # a fresh start on the other weights
        c.post("/events", json=events, headers=auth())
        started = c.get(path).json()
    assert reloaded != before
    assert [r["item"] for r in reloaded["items"]] == [r["item"] for r in started["items"]]
    np.testing.assert_allclose([r["score"] for r in reloaded["items"]],
                               [r["score"] for r in started["items"]], atol=1e-5)


def test_non_finite_numbers_in_a_body_are_422_not_500(run_dir: Path) -> None:
    headers = {**auth(), "Content-Type": "application/json"}
    with client(run_dir) as c:
        for body in (b'{"user": "a", "item": "1", "rating": NaN}',
                     b'{"user": "a", "item": "1", "rating": 3, "timestamp": Infinity}'):
            response = c.post("/events", content=body, headers=headers)
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["loc"][-1] in ("rating", "timestamp")


def test_a_chunked_body_over_the_limit_is_413(run_dir: Path) -> None:
    def chunks():
        yield b'{"id": "'
        for _ in range(40):
            yield b"x" * 10_000
        yield b'"}'

    with client(run_dir, max_body_bytes=200_000) as c:
        response = c.post("/items", content=chunks(), headers={
            **auth(), "Content-Type": "application/json"})
        assert response.status_code == 413
        small = c.post("/items", content=iter([b'{"id": "ok', b'"}']), headers={
            **auth(), "Content-Type": "application/json"})
        assert small.status_code == 200


def test_feature_values_the_encoder_cannot_take_are_refused_or_missing(run_dir: Path) -> None:
    headers = {**auth(), "Content-Type": "application/json"}
    with client(run_dir) as c:
        # An integer past a float's range: stored, and encoded as a missing number.
        huge = c.post("/items", content=b'{"id": "big", "features": {"year": 1' +
                      b"0" * 400 + b"}}", headers=headers)
        assert huge.status_code == 200
        assert c.post("/items", json={"id": "next", "features": {"year": 2000}},
                      headers=auth()).status_code == 200
        event = c.post("/events", json={"user": "z", "item": "next", "rating": 4},
                       headers=auth())
        assert event.status_code == 200
        recs = c.get("/users/z/recommendations?k=1000").json()["items"]
        assert len(recs) == 81 and "next" not in {r["item"] for r in recs}
        # Repeated members count once; more than MAX_MEMBERS values are refused.
        assert c.post("/items", json={"id": "dup", "features": {"genres": ["Drama"] * 200}},
                      headers=auth()).status_code == 200
        state = c.app.state.holder["state"]  # type: ignore[attr-defined]
        assert state.items.table.table().values["genres"].shape[1] < 10
        wide = c.post("/items", json={"id": "wide", "features": {
            "genres": ["Drama"] * (MAX_MEMBERS + 1)}}, headers=auth())
        assert wide.status_code == 422
    with client(run_dir) as c:  # and the service starts again on that database
        assert c.get("/health").json()["items"] == 83


def test_exclude_seen_leaves_out_items_older_than_the_kept_support(run_dir: Path) -> None:
    events = [{"user": "heavy", "item": str(i), "rating": 3.0} for i in range(1, 61)]
    with client(run_dir) as c:
        c.post("/events", json={"events": events}, headers=auth())
        assert c.get("/users/heavy").json()["support_size"] == 50
        recs = c.get("/users/heavy/recommendations?k=1000").json()["items"]
    assert len(recs) == 20 and not {r["item"] for r in recs} & {str(i) for i in range(1, 61)}


@pytest.mark.parametrize("item_shrinkage", [None, 1.0])
def test_a_changed_item_readapts_its_raters_as_a_restart_would(
        run_dir: Path, item_shrinkage: float | None) -> None:
    with client(run_dir, item_shrinkage=item_shrinkage) as c:
        c.post("/events", json={"events": [{"user": "s1", "item": "7", "rating": 5},
                                           {"user": "s1", "item": "9", "rating": 1}]},
               headers=auth())
        before = c.get("/users/s1/recommendations?k=20").json()
        c.post("/items", json={"id": "7", "features": {"genres": ["Comedy", "Romance"],
                                                       "rate": "G", "year": 1960}},
               headers=auth())
        after = c.get("/users/s1/recommendations?k=20").json()
    with client(run_dir, item_shrinkage=item_shrinkage) as c:
        restarted = c.get("/users/s1/recommendations?k=20").json()
    assert after != before
    assert restarted == after


def _score_of(recommendations: dict, item: str) -> float:
    return next(r["score"] for r in recommendations["items"] if r["item"] == item)


def test_app_from_env_takes_the_item_shrinkage(run_dir: Path, monkeypatch) -> None:
    from metarec.errors import ConfigError
    from metarec.serve.app import app_from_env

    monkeypatch.setenv("METAREC_RUN_DIR", str(run_dir))
    monkeypatch.setenv("METAREC_ITEM_SHRINKAGE", "2.5")
    with TestClient(app_from_env()) as c:
        assert c.get("/health").json()["item_shrinkage"] == 2.5
    monkeypatch.setenv("METAREC_ITEM_SHRINKAGE", "lots")
    with pytest.raises(ConfigError, match="METAREC_ITEM_SHRINKAGE must be a number"):
        app_from_env()
    monkeypatch.delenv("METAREC_ITEM_SHRINKAGE")
    with TestClient(app_from_env()) as c:
        assert c.get("/health").json()["item_shrinkage"] is None


def test_app_from_env_takes_the_learner_and_needs_a_run_dir(run_dir: Path,
                                                             monkeypatch) -> None:
    """A run folder with several learners could not be served under uvicorn: the
    environment had no way to choose one (``metarec serve --learner``)."""
    from metarec.errors import CheckpointError, ConfigError
    from metarec.serve.app import app_from_env

    shutil.copytree(run_dir / "checkpoints" / "maml-r", run_dir / "checkpoints" / "other")
    monkeypatch.setenv("METAREC_RUN_DIR", str(run_dir))
    with pytest.raises(CheckpointError, match="several learners saved"), \
            TestClient(app_from_env()):
        pass
    monkeypatch.setenv("METAREC_LEARNER", "other")
    with TestClient(app_from_env()) as c:
        assert c.get("/health").json()["checkpoint"] == "other"
    monkeypatch.delenv("METAREC_RUN_DIR")
    with pytest.raises(ConfigError, match="METAREC_RUN_DIR is not set"):
        app_from_env()


def test_app_from_env_reads_each_setting_of_metarec_serve(monkeypatch) -> None:
    import metarec.serve.app as app_module

    values = {"RUN_DIR": "/runs/a", "LEARNER": "ridge-seed2", "DB": "sqlite:////tmp/x.db",
              "DATASET": "movielens-1m", "DATA_DIR": "/data/ml-1m", "TOKEN": "t",
              "ITEM_SHRINKAGE": "3"}
    for name, value in values.items():
        monkeypatch.setenv(f"METAREC_{name}", value)
    monkeypatch.setattr(app_module, "create_app", lambda settings: settings)
    assert app_module.app_from_env() == app_module.ServeSettings(
        run_dir=Path("/runs/a"), learner="ridge-seed2", db_url="sqlite:////tmp/x.db",
        dataset="movielens-1m", data_dir=Path("/data/ml-1m"), token="t", item_shrinkage=3.0)
    for name in values:
        if name != "RUN_DIR":
            monkeypatch.setenv(f"METAREC_{name}", "")  # empty: the option's default
    assert app_module.app_from_env() == app_module.ServeSettings(run_dir=Path("/runs/a"))


def test_item_offsets_lift_a_new_film_its_first_raters_love(run_dir: Path) -> None:
    film = {"id": "new-film", "features": {"genres": ["Drama"], "rate": "R", "year": 2001}}
    loved = [{"user": f"fan{u}", "item": "new-film", "rating": 5} for u in range(4)]
    scores = {}
    for shrinkage in (None, 1.0):
        run = run_dir.parent / f"offsets-{shrinkage}"  # a private copy each
        shutil.copytree(run_dir, run)
        (run / "service.db").unlink(missing_ok=True)
        with client(run, item_shrinkage=shrinkage) as c:
            c.post("/items", json=film, headers=auth())
            c.post("/events", json={"events": [*loved, {"user": "me", "item": "3",
                                                        "rating": 4}]}, headers=auth())
            everything = "/users/me/recommendations?k=1000"
            scores[shrinkage] = _score_of(c.get(everything).json(), "new-film")
            with client(run, item_shrinkage=shrinkage) as again:  # a restart
                assert again.get(everything).json() == c.get(everything).json()
    # Four fives against the model's prediction: the film's offset is positive.
    assert scores[1.0] > scores[None] + 0.1, scores


def test_serve_reports_a_bad_run_folder_in_one_line_before_uvicorn_starts(
        trained_run: Path, tmp_path: Path) -> None:
    """Several learners and no --learner: the command's one-line error, exit 2."""
    import shutil

    from typer.testing import CliRunner

    from metarec.cli import app
    from metarec.errors import CheckpointError

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    shutil.copytree(run / "checkpoints" / "maml-r", run / "checkpoints" / "reptile")
    result = CliRunner().invoke(app, ["serve", str(run), "--port", "1"])
    assert isinstance(result.exception, CheckpointError), result.output
    assert "several learners saved (maml-r, reptile)" in str(result.exception)


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://a/b", "unsupported database URL"),
    ("sqlite://", "in-memory SQLite"),
    ("sqlite:///:memory:", "in-memory SQLite"),
    ("sqlite:////no/such/folder/service.db", "cannot open the database 'sqlite:////no/such"
                                             "/folder/service.db': unable to open"),
    ("NOT-A-DB", "not a database"),
])
def test_a_database_the_service_cannot_use_is_one_config_error(
        trained_run: Path, tmp_path: Path, url: str, message: str) -> None:
    """The command's one-line error (exit 2) before uvicorn starts, where an in-memory
    database had started and then answered every write with a 500, and a bad path had
    been a traceback."""
    from typer.testing import CliRunner

    from metarec.cli import app
    from metarec.errors import ConfigError

    if url == "NOT-A-DB":
        (tmp_path / "notes.txt").write_text("these are not tables\n" * 100)
        url = f"sqlite:///{tmp_path / 'notes.txt'}"
    result = CliRunner().invoke(app, ["serve", str(trained_run), "--db", url, "--port", "1"])
    assert isinstance(result.exception, ConfigError), result.output
    assert message in str(result.exception)
    assert "\n" not in str(result.exception)


def test_a_re_rated_item_is_kept_once_with_its_latest_rating(run_dir: Path) -> None:
    with client(run_dir) as c:
        for rating in (5, 1):
            c.post("/events", json={"user": "eve", "item": "12", "rating": rating},
                   headers=auth())
        user = c.get("/users/eve").json()
        state = c.app.state.holder["state"].snapshot()["eve"]  # type: ignore[attr-defined]
    assert (user["events"], user["support_size"]) == (2, 1)
    assert state["ratings"] == [1.0]
