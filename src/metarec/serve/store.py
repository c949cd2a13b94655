"""The service's storage: users, items and events in one SQL database (SQLAlchemy 2).

Events are the source of truth: the in-memory recommender state is rebuilt from them at
start. SQLite runs in WAL mode with ``synchronous=FULL`` (a committed event survives a
killed process and a power cut); PostgreSQL is used as is (``postgresql+psycopg://``).
Raw ids are strings; side features are stored raw (JSON), as the client sent them, so a
new checkpoint with other vocabularies can re-encode them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    String,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from metarec.errors import ConfigError, MetarecError, first_line


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(256), unique=True, index=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ItemRow(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(256), unique=True, index=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    rating: Mapped[float] = mapped_column(Float)
    timestamp: Mapped[float] = mapped_column(Float)
    # The client's idempotency key (None: none given); a retried event with the same key
    # is answered from the database and not stored again.
    event_key: Mapped[str | None] = mapped_column(String(256), unique=True, index=True,
                                                  nullable=True)


class EventConflict(MetarecError):
    """An event's key is stored already, for another user, item, rating or time."""


def first_repeated(keys: Sequence[str]) -> str | None:
    """The first key that ``keys`` holds more than once (None: all differ)."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


@dataclass(frozen=True)
class NewEvent:
    """One event to store: raw user and item ids, rating, time in seconds (None: the
    time of arrival) and the client's idempotency key (None: none)."""

    user: str
    item: str
    rating: float
    timestamp: float | None = None
    key: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    """One event as stored: database id, raw user and item ids, rating, time (seconds)."""

    id: int
    user: str
    item: str
    rating: float
    timestamp: float


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode and full synchronous commits."""
    if not url.startswith(("sqlite", "postgresql")):
        raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///PATH or "
                          "postgresql+psycopg://USER:PASS@HOST/DB")
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigError(f"unreadable database URL {url!r}: {error}") from None
    if url.startswith("sqlite"):
        if parsed.database in (None, "", ":memory:") or "mode=memory" in url:
            raise ConfigError(f"database URL {url!r} is an in-memory SQLite database, "
                              "which every connection sees empty and which a restart "
                              "loses: use sqlite:///PATH")
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ImportError as error:  # the URL's driver (psycopg) is not installed
        raise ConfigError(f"database URL {parsed.render_as_string(hide_password=True)!r} "
                          f"needs a driver that is not installed ({error}): pip install "
                          "'metarec[postgres]'") from None


class EventStore:
    """Users, items and events in one database; every write is one committed
    transaction, and a method returns only after the commit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            Base.metadata.create_all(self.engine)
            self._add_event_keys()
        except SQLAlchemyError as error:
            self.engine.dispose()
            shown = make_url(url).render_as_string(hide_password=True)
            reason = first_line(getattr(error, "orig", None) or error)
            raise ConfigError(f"cannot open the database {shown!r}: {reason}") from None

    def close(self) -> None:
        self.engine.dispose()

    def _add_event_keys(self) -> None:
        """Give a database written before events had keys the ``event_key`` column, then
        its unique index; the events stored before keep no key. SQLite's driver runs
        these statements outside any transaction, so each step is taken on its own: a
        start interrupted between the two, or two starts at once, end the same way."""
        self._take_step(self._has_key_column,
                        "ALTER TABLE events ADD COLUMN event_key VARCHAR(256)")
        self._take_step(self._has_key_index, "CREATE UNIQUE INDEX IF NOT EXISTS "
                        "ix_events_event_key ON events (event_key)")

    def _has_key_column(self) -> bool:
        return "event_key" in {c["name"] for c in inspect(self.engine).get_columns("events")}

    def _has_key_index(self) -> bool:
        return "ix_events_event_key" in {
            i["name"] for i in inspect(self.engine).get_indexes("events")}

    def _take_step(self, done: Callable[[], bool], statement: str) -> None:
        """Run ``statement`` unless ``done()``; a failure is fine when another process
        has just done it (``done()`` after it)."""
        if done():
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(text(statement))
        except SQLAlchemyError:
            if not done():
                raise

    # ---- users and items ------------------------------------------------------------
    def _ensure(self, session: Session, table: type[UserRow] | type[ItemRow],
                features: dict[str, dict[str, Any] | None]) -> dict[str, tuple[int, bool]]:
        """Database ids of raw ids, creating missing rows; (id, created) by raw id.
        ``features`` None keeps a row's stored features; a dict replaces them."""
        if not features:
            return {}
        found = dict(session.execute(select(table.external_id, table.id).where(
            table.external_id.in_(list(features)))).all())
        out = {k: (v, False) for k, v in found.items()}
        for raw, values in features.items():
            if raw in found:
                if values is not None:
                    session.get(table, found[raw]).features = values  # type: ignore[union-attr]
                continue
            row = table(external_id=raw, features=values or {})
            session.add(row)
            session.flush()
            out[raw] = (row.id, True)
        return out

    def upsert_users(self, features: dict[str, dict[str, Any] | None]
                     ) -> dict[str, tuple[int, bool]]:
        """Register users (raw id -> features); returns (database id, created)."""
        with Session(self.engine) as session, session.begin():
            return self._ensure(session, UserRow, features)

    def upsert_items(self, features: dict[str, dict[str, Any] | None]
                     ) -> dict[str, tuple[int, bool]]:
        """Register items (raw id -> features); returns (database id, created)."""
        with Session(self.engine) as session, session.begin():
            return self._ensure(session, ItemRow, features)

    def bulk_insert(self, users: Sequence[tuple[str, dict[str, Any]]],
                    items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Insert many new users and items at once (seeding an empty catalogue)."""
        with Session(self.engine) as session, session.begin():
            if users:
                session.execute(insert(UserRow), [{"external_id": u, "features": f}
                                                  for u, f in users])
            if items:
                session.execute(insert(ItemRow), [{"external_id": i, "features": f}
                                                  for i, f in items])

    def users(self) -> list[tuple[int, str, dict[str, Any]]]:
        """Every user as (database id, raw id, features), by database id."""
        with Session(self.engine) as session:
            rows = session.execute(select(UserRow.id, UserRow.external_id, UserRow.features)
                                   .order_by(UserRow.id)).all()
        return [(r[0], r[1], r[2] or {}) for r in rows]

    def items(self) -> list[tuple[int, str, dict[str, Any]]]:
        """Every item as (database id, raw id, features), by database id."""
        with Session(self.engine) as session:
            rows = session.execute(select(ItemRow.id, ItemRow.external_id, ItemRow.features)
                                   .order_by(ItemRow.id)).all()
        return [(r[0], r[1], r[2] or {}) for r in rows]

    def count_items(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(ItemRow)) or 0)

    # ---- events ---------------------------------------------------------------------
    def add_events(self, events: Sequence[NewEvent]) -> tuple[list[StoredEvent], list[int]]:
        """Commit ``events`` in one transaction (unknown users and items are registered
        without features). An event whose key is stored already is a retry: it is not
        stored again, and it must name the same user, item and rating (and time, when it
        gives one) or the whole batch is refused with :class:`EventConflict`. Returns the
        newly stored events, and the database id of every event of ``events`` in order
        (a retry's is the id stored the first time)."""
        keys = [e.key for e in events if e.key is not None]
        repeated = first_repeated(keys)
        if repeated is not None:
            raise EventConflict(f"event key {repeated!r} is given twice in one batch")
        # A unique index refuses the batch when another process has stored one of its
        # keys, users or items since this one looked: look again (those events are then
        # retries, those rows found). Each refusal is a row committed meanwhile, so the
        # batch succeeds before its keys, users and items have all been taken.
        for _ in range(3 * len(events)):
            try:
                return self._add_events(events, keys)
            except IntegrityError:
                continue
        return self._add_events(events, keys)  # the last look: a refusal is the caller's

    def _add_events(self, events: Sequence[NewEvent], keys: list[str]
                    ) -> tuple[list[StoredEvent], list[int]]:
        now = time.time()
        with Session(self.engine) as session, session.begin():
            known = {row[0]: row for row in session.execute(
                select(EventRow.event_key, EventRow.id, UserRow.external_id,
                       ItemRow.external_id, EventRow.rating, EventRow.timestamp)
                .join(UserRow, EventRow.user_id == UserRow.id)
                .join(ItemRow, EventRow.item_id == ItemRow.id)
                .where(EventRow.event_key.in_(keys))).all()} if keys else {}
            for e in events:
                if e.key in known:
                    _, _, user, item, rating, timestamp = known[e.key]
                    if (user, item, rating) != (e.user, e.item, float(e.rating)) or (
                            e.timestamp is not None and timestamp != float(e.timestamp)):
                        raise EventConflict(
                            f"event key {e.key!r} is stored already for another event "
                            f"(user {user!r}, item {item!r}, rating {rating}, timestamp "
                            f"{timestamp}): a retry must repeat the event unchanged")
            new = [e for e in events if e.key not in known]
            users = self._ensure(session, UserRow, {e.user: None for e in new})
            items = self._ensure(session, ItemRow, {e.item: None for e in new})
            rows = [EventRow(user_id=users[e.user][0], item_id=items[e.item][0],
                             rating=float(e.rating),
                             timestamp=float(now if e.timestamp is None else e.timestamp),
                             event_key=e.key)
                    for e in new]
            session.add_all(rows)
            session.flush()
            stored = [StoredEvent(row.id, e.user, e.item, row.rating, row.timestamp)
                      for row, e in zip(rows, new, strict=True)]
        fresh = iter(stored)
        ids = [known[e.key][1] if e.key in known else next(fresh).id for e in events]
        return stored, ids

    def iter_events(self, batch: int = 10_000) -> Iterator[StoredEvent]:
        """Every event in commit (database id) order."""
        last = 0
        while True:
            with Session(self.engine) as session:
                rows = session.execute(
                    select(EventRow.id, UserRow.external_id, ItemRow.external_id,
                           EventRow.rating, EventRow.timestamp)
                    .join(UserRow, EventRow.user_id == UserRow.id)
                    .join(ItemRow, EventRow.item_id == ItemRow.id)
                    .where(EventRow.id > last).order_by(EventRow.id).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield StoredEvent(row[0], row[1], row[2], row[3], row[4])
            last = rows[-1][0]

    def event_ids(self) -> set[int]:
        """Database ids of every stored event."""
        with Session(self.engine) as session:
            return set(session.scalars(select(EventRow.id)).all())
