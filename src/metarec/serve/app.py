"""The FastAPI application: events in, adapted recommendations out.

The in-memory state changes only on the event loop. Every write (events, users, items)
takes one lock, commits in a worker thread (so that reads go on meanwhile), then applies
what it committed to the state: writes are committed and applied in one order, the
database's. ``POST /events`` answers only after the transaction committed: an
acknowledged event is never lost, and the state is rebuilt from the stored events at the
next start.
"""


import asyncio
import hmac
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from metarec.errors import ConfigError, MetarecError
from metarec.evaluation.prequential import data_of_run
from metarec.learners.base import find_saved_learner
from metarec.learners.online import OnlineConfig
from metarec.serve.state import (
    ServiceState,
    Side,
    decode_table,
    load_learner,
)
from metarec.serve.store import EventConflict, EventStore, NewEvent, first_repeated

log = logging.getLogger(__name__)

MAX_BATCH = 1000
"""Most events in one ``POST /events`` (more: 422)."""
MAX_MEMBERS = 256
"""Most values of one multi-valued feature (genres, actors) of a user or item."""


def _raw_id(value: str | int) -> str:
    """Raw ids travel as strings of 1 to 256 characters, without NUL (PostgreSQL's text
    cannot hold it)."""
    return _short_text(str(value), "id")


def _event_key(value: str) -> str:
    """An event's idempotency key: a string as an id is."""
    return _short_text(value, "key")


def _short_text(text: str, what: str) -> str:
    if not 0 < len(text) <= 256:
        raise ValueError(f"{what} must have 1 to 256 characters")
    if "\x00" in text:
        raise ValueError(f"{what} may not contain NUL")
    return _utf8(text)


def _utf8(text: str) -> str:
    """Text a database can store: no unpaired surrogate (JSON's ``"\\ud800"``)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text may not hold an unpaired surrogate (it is not "
                             "UTF-8)") from None
    return text


def _path_safe(text: str) -> str:
    """A user id also names a path (``GET /users/{id}``), which cannot hold a ``/``."""
    if "/" in text:
        raise ValueError("a user id may not contain '/' (GET /users/{id} could not name it)")
    return text


RawId = Annotated[StrictStr | StrictInt, Field(description="raw id (string or integer)"),
                  AfterValidator(_raw_id)]
UserId = Annotated[RawId, AfterValidator(_path_safe)]
Text = Annotated[StrictStr, AfterValidator(_utf8)]
FeatureValue = (Text | StrictInt | StrictFloat
                | Annotated[list[Text], Field(max_length=MAX_MEMBERS)] | None)


@dataclass
class ServeSettings:
    """How the service runs: the run folder (or checkpoint), the database URL (default
    ``sqlite:///RUN_DIR/service.db``), the data set seeding an empty catalogue (default:
    the one named in the run's config.toml, else ``synthetic``), the bearer token of
    write/admin endpoints (None: they always answer 401), request limits, and
    ``item_shrinkage``: learn an offset per item from the events (see
    :class:`~metarec.learners.online.OnlineConfig`; None = off)."""

    run_dir: Path
    db_url: str | None = None
    dataset: str | None = None
    dataset_options: dict[str, Any] | None = None
    data_dir: Path | None = None
    learner: str | None = None
    token: str | None = None
    max_body_bytes: int = 1 << 20
    max_k: int = 1000
    torch_threads: int | None = 1
    item_shrinkage: float | None = None

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{Path(self.run_dir) / 'service.db'}"


# ---- request and response bodies -------------------------------------------------------
class EventIn(BaseModel):
    """One rating event; ``timestamp`` in seconds since the epoch (default: now)."""

    model_config = ConfigDict(extra="forbid")
    user: UserId
    item: RawId
    rating: Annotated[float, Strict()] = Field(ge=0.0, le=10.0, allow_inf_nan=False)
    timestamp: Annotated[float, Strict()] | None = Field(default=None, allow_inf_nan=False)
    key: Annotated[StrictStr, AfterValidator(_event_key)] | None = Field(
        default=None, description="idempotency key: an event whose key is stored already "
        "is a retry, answered with the stored id and not stored again")


def _distinct_keys(events: list[EventIn]) -> list[EventIn]:
    repeated = first_repeated([e.key for e in events if e.key is not None])
    if repeated is not None:
        raise ValueError(f"event key {repeated!r} is given twice")
    return events


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[EventIn], AfterValidator(_distinct_keys)] = Field(
        min_length=1, max_length=MAX_BATCH)


class EntityIn(BaseModel):
    """A user or item with raw side features (field -> value; lists for multi fields)."""

    model_config = ConfigDict(extra="forbid")
    id: RawId
    features: dict[Text, FeatureValue] = Field(default_factory=dict, max_length=64)


class UserIn(EntityIn):
    id: UserId


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    learner: str | None = None


# ---- metrics ---------------------------------------------------------------------------
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += seconds

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip((*BUCKETS, math.inf), self.counts, strict=True):
            running += count
            le = "+Inf" if math.isinf(bound) else repr(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total}")
        out.append(f"{name}_count{{{labels}}} {running}")
        return out


class Metrics:
    """Counters and latency histograms, written in the Prometheus text format."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], Histogram] = defaultdict(Histogram)
        self.adaptation = Histogram()

    def render(self, state: ServiceState | None) -> str:
        lines = ["# HELP metarec_requests_total HTTP requests by route and status.",
                 "# TYPE metarec_requests_total counter"]
        for (method, route, status), count in sorted(self.requests.items()):
            lines.append(f'metarec_requests_total{{method="{method}",route="{route}",'
                         f'status="{status}"}} {count}')
        lines += ["# HELP metarec_request_seconds Request latency by route.",
                  "# TYPE metarec_request_seconds histogram"]
        for (method, route), histogram in sorted(self.latency.items()):
            lines += histogram.lines("metarec_request_seconds",
                                     f'method="{method}",route="{route}"')
        lines += ["# HELP metarec_recommend_adapt_seconds Recommendation requests that "
                  "adapted a user: time to adapt and score.",
                  "# TYPE metarec_recommend_adapt_seconds histogram"]
        lines += self.adaptation.lines("metarec_recommend_adapt_seconds", "")
        if state is not None:
            gauges = {"metarec_events_total": ("counter", state.counters.events),
                      "metarec_adaptations_total": ("counter", state.counters.adaptations),
                      "metarec_reloads_total": ("counter", state.counters.reloads),
                      "metarec_users": ("gauge", len(state.users.raw)),
                      "metarec_items": ("gauge", len(state.items.raw))}
            for name, (kind, value) in gauges.items():
                lines += [f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(lines) + "\n"


class LimitAndMeasure:
    """ASGI middleware: refuses bodies over ``max_body`` bytes (413) and records each
    request's count and latency by route template."""

    def __init__(self, app: Any, metrics: Metrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _too_large(send, self.max_body)
            self._record(scope, 413, start)
            return
        # Read the whole body first (at most max_body bytes): a chunked body (no
        # content-length) over the limit is refused here, before the app parses any of it.
        messages, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)  # the client went away
                break
            received += len(message.get("body", b""))
            if received > self.max_body:
                await _too_large(send, self.max_body)
                self._record(scope, 413, start)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        async def watching_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, watching_send)
        finally:  # a request that raised counts too, as the 500 the server answers
            self._record(scope, status["code"], start)

    def _record(self, scope: dict, status: int, start: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "GET")
        self.metrics.requests[(method, template, status)] += 1
        self.metrics.latency[(method, template)].observe(time.perf_counter() - start)


async def _too_large(send: Callable[[dict], Awaitable[None]], limit: int) -> None:
    body = (f'{{"detail":"request body over {limit} bytes: send fewer events per '
            'request"}').encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ---- the application -------------------------------------------------------------------
def build_state(settings: ServeSettings) -> ServiceState:
    """Open the store, load the checkpoint, seed an empty catalogue, replay the events."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    checkpoint = find_saved_learner(settings.run_dir, settings.learner)
    store = EventStore(settings.database_url())
    state = ServiceState(load_learner(checkpoint), store, checkpoint,
                         OnlineConfig(mode="meta", update_every=0,
                                      item_shrinkage=settings.item_shrinkage))
    if store.count_items() == 0:
        _seed(state, settings)
    state.load_catalogue()
    return state


def _seed(state: ServiceState, settings: ServeSettings) -> None:
    from metarec.data.registry import load_dataset

    named = data_of_run(settings.run_dir)
    name, options, run_data_dir = ("synthetic", {}, None) if named is None else named
    if settings.dataset is not None:
        name, options, run_data_dir = settings.dataset, {}, None
    if settings.dataset_options is not None:
        options = settings.dataset_options
    data_dir = settings.data_dir or (Path(run_data_dir) if run_data_dir else None)
    dataset = load_dataset(name, data_dir=data_dir, **options)
    users = [(str(raw), features) for raw, features in
             zip(dataset.user_ids.raw.tolist(), decode_table(dataset.users), strict=True)]
    items = [(str(raw), features) for raw, features in
             zip(dataset.item_ids.raw.tolist(), decode_table(dataset.items), strict=True)]
    state.seed(users, items)
    log.info("seeded the catalogue from %s: %d users, %d items", name, len(users),
             len(items))


def create_app(settings: ServeSettings, state: ServiceState | None = None) -> FastAPI:
    """The service as a FastAPI app over ``state`` (default: built by
    :func:`build_state` when the app starts)."""
    metrics = Metrics()
    holder: dict[str, ServiceState] = {}
    built = state

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder["state"] = built if built is not None else build_state(settings)
        try:
            yield
        finally:
            holder["state"].store.close()

    app = FastAPI(title="metarec", version="0.1.0", lifespan=lifespan,
                  description="Meta-learned recommendations adapted to each user's events.")
    app.state.metrics = metrics
    app.state.holder = holder
    app.add_middleware(LimitAndMeasure, metrics=metrics, max_body=settings.max_body_bytes)

    write_lock = asyncio.Lock()

    def state() -> ServiceState:
        return holder["state"]

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        if not settings.token:  # unset or empty: writes are off
            raise HTTPException(401, "write endpoints are disabled: start the service with "
                                "METAREC_TOKEN set", headers={"WWW-Authenticate": "Bearer"})
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        if (scheme.lower() != "bearer" or not given
                or not hmac.compare_digest(given.encode(), settings.token.encode())):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    Auth = Depends(authorised)

    @app.exception_handler(MetarecError)
    async def _project_error(_: Any, error: MetarecError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Any, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler fails on the NaN or Infinity a JSON body may carry.
        return JSONResponse({"detail": _finite(jsonable_encoder(error.errors()))},
                            status_code=422)

    @app.post("/events", dependencies=[Auth], summary="Record one event or a batch")
    async def post_events(body: Annotated[EventIn | EventBatch, Body()]) -> dict[str, Any]:
        events = body.events if isinstance(body, EventBatch) else [body]
        rows = [NewEvent(e.user, e.item, e.rating, e.timestamp, e.key)  # type: ignore[arg-type]
                for e in events]
        # The commit (and its fsync) runs in a thread so reads go on meanwhile; the lock
        # keeps commits and their application to the state in one order.
        async with write_lock:
            current = state()
            try:
                stored, ids = await asyncio.to_thread(current.store.add_events, rows)
            except EventConflict as error:
                raise HTTPException(409, str(error)) from None
            current.learn(stored)
        return {"stored": len(stored), "repeated": len(rows) - len(stored), "ids": ids}

    @app.get("/users/{user_id}/recommendations", summary="Top-k items for a user")
    async def recommendations(
        user_id: Annotated[str, PathParam(max_length=256)],
        k: Annotated[int, Query(ge=1, le=settings.max_k)] = 10,
        exclude_seen: bool = True,
    ) -> dict[str, Any]:
        start = time.perf_counter()
        current = state()
        before = current.counters.adaptations
        items, source = current.recommend(user_id, k, exclude_seen)
        if current.counters.adaptations > before:
            metrics.adaptation.observe(time.perf_counter() - start)
        return {"user": user_id, "source": source, "items": items}

    async def register(side: Side, body: EntityIn) -> dict[str, Any]:
        features = {str(body.id): dict(body.features)}
        async with write_lock:
            current = state()
            created = await asyncio.to_thread(current.commit_entities, side, features)
            current.apply_entities(side, features)
        return {"id": body.id, "created": created[str(body.id)]}

    @app.post("/users", dependencies=[Auth], summary="Register or update a user")
    async def post_user(body: UserIn) -> dict[str, Any]:
        return await register("users", body)

    @app.post("/items", dependencies=[Auth], summary="Register or update an item")
    async def post_item(body: EntityIn) -> dict[str, Any]:
        return await register("items", body)

    @app.get("/users/{user_id}", summary="What the service knows of a user")
    async def get_user(user_id: Annotated[str, PathParam(max_length=256)]) -> dict[str, Any]:
        return state().user_info(user_id)

    @app.get("/health", summary="Liveness and catalogue size")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **state().describe()}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def get_metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(holder.get("state")),
                                 media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload", dependencies=[Auth], summary="Swap the model checkpoint")
    async def reload(body: Annotated[ReloadIn | None, Body()] = None) -> JSONResponse:
        path = Path(body.path) if body and body.path else settings.run_dir
        name = body.learner if body and body.learner else settings.learner
        # Loading happens off the event loop; requests go on meanwhile.
        checkpoint = find_saved_learner(path, name)
        learner = await asyncio.to_thread(load_learner, checkpoint)
        state().reload(learner, checkpoint)
        return JSONResponse({"reloaded": checkpoint.name, "learner": learner.name})

    return app


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float written as a string (JSON has none), and
    every unpaired surrogate in a string escaped (UTF-8 has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and not value.isascii():
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {_finite(k): _finite(v) for k, v in value.items()}
    return value


def app_from_env() -> FastAPI:
    """An app configured from the environment (for ``uvicorn --factory
    metarec.serve.app:app_from_env``), as ``metarec serve`` is from its options:
    ``METAREC_RUN_DIR`` (required), ``METAREC_LEARNER``, ``METAREC_DB``,
    ``METAREC_DATASET``, ``METAREC_DATA_DIR``, ``METAREC_TOKEN`` and
    ``METAREC_ITEM_SHRINKAGE``; unset or empty is the option's default."""
    env = {name: os.environ.get(f"METAREC_{name}") or None
           for name in ("RUN_DIR", "LEARNER", "DB", "DATASET", "DATA_DIR", "TOKEN",
                        "ITEM_SHRINKAGE")}
    if env["RUN_DIR"] is None:
        raise ConfigError("METAREC_RUN_DIR is not set: the run folder (or saved learner "
                          "folder) to serve")
    shrinkage = env["ITEM_SHRINKAGE"]
    try:
        item_shrinkage = None if shrinkage is None else float(shrinkage)
    except ValueError:
        raise ConfigError(f"METAREC_ITEM_SHRINKAGE must be a number, got {shrinkage!r}"
                          ) from None
    data_dir = env["DATA_DIR"]
    return create_app(ServeSettings(run_dir=Path(env["RUN_DIR"]), learner=env["LEARNER"],
                                    db_url=env["DB"], dataset=env["DATASET"],
                                    data_dir=None if data_dir is None else Path(data_dir),
                                    token=env["TOKEN"], item_shrinkage=item_shrinkage))
