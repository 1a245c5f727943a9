"""Engines and sessions for the ticket database.

SQLite is the embedded default and one file is shared by several processes
(Rasa, the action server, the web app, the CLI), so every SQLite connection
gets WAL (readers never block the writer), a busy timeout (a writer waits for
another instead of failing at once) and foreign keys (off by default in SQLite).

Transactions on SQLite start with ``BEGIN IMMEDIATE``: the write lock is taken
at the start, so a transaction that first reads and then writes can never fail
with SQLITE_BUSY half-way (WAL's "snapshot too old" case, which the busy
timeout does not cover). Writers therefore queue up instead of failing; our
transactions are short, so this costs little. Keep sessions short, or use
`read_only(engine)` / `session_scope(readonly=True)` for long reads, which start
deferred. Issuing BEGIN ourselves also makes SAVEPOINT work, which pysqlite's
own transaction handling breaks.

PostgreSQL goes through the same URL (psycopg2); nothing special is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.future import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool, StaticPool

from bot.settings import get_settings, resolve_sqlite_url

SQLITE_BUSY_TIMEOUT_MS = 5000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A 2.0-style engine for `url`; SQLite files get WAL, busy timeout and FKs."""
    url = resolve_sqlite_url(url)
    if not is_sqlite(url):
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)

    path = _sqlite_file(url)
    connect_args = dict(kwargs.pop("connect_args", {}))
    # Sessions in other threads (e.g. the action server's executor) may use
    # the connection a pool hands out.
    connect_args.setdefault("check_same_thread", False)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        # Keep connections open: SQLAlchemy 1.4's default for SQLite files
        # opens a new one per transaction, and closing the last one also
        # checkpoints and deletes the WAL, which the next write recreates:
        # measured 41 -> 16 ms per ticket opened (benchmarks/README.md).
        kwargs.setdefault("poolclass", QueuePool)
    else:
        # One shared connection, otherwise each connection has its own
        # empty in-memory database.
        kwargs.setdefault("poolclass", StaticPool)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if path is not None:
                cursor.execute("PRAGMA journal_mode = WAL")
                # Safe with WAL (no corruption, at worst the last commit is
                # lost on power failure) and much faster than FULL.
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def read_only(engine: Engine) -> Engine:
    """The same engine, but SQLite transactions start deferred (no write lock).

    For sessions that only read and may stay open a while; a write in such a
    transaction may fail with "database is locked" instead of waiting.
    """
    return engine.execution_options(sqlite_begin="DEFERRED")


@contextmanager
def session_scope(engine: Engine | None = None, readonly: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error, always close.

    `readonly=True` starts SQLite transactions deferred (see `read_only`).
    """
    bind = engine or get_engine()
    session = Session(
        bind=read_only(bind) if readonly else bind, future=True, expire_on_commit=False
    )
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@cache
def engine_for(url: str) -> Engine:
    """The engine of this process for `url`, created once."""
    return make_engine(url)


def get_engine() -> Engine:
    """The engine of this process for `settings.database_url`, created once."""
    return engine_for(get_settings().database_url)
