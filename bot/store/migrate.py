"""Bring a database schema to the newest migration, from code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from bot.settings import PROJECT_ROOT, get_settings
from bot.store.db import make_engine

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


@contextmanager
def migrating(connection: Connection) -> Iterator[None]:
    """On SQLite, foreign keys off while migrating (call before the transaction begins).

    Changing a table on SQLite copies it (alembic's batch mode) and drops the
    original, which the foreign keys onto it refuse once the table holds rows.
    `check_foreign_keys` then checks them all before the migration commits.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Outside any transaction: inside one, SQLite ignores this pragma.
        connection.connection.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if sqlite:
            connection.connection.execute("PRAGMA foreign_keys = ON")


def check_foreign_keys(connection: Connection) -> None:
    """Refuse (roll back) a migration that left a row pointing nowhere (SQLite)."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left rows pointing nowhere: {broken[:5]}")


def alembic_config() -> Config:
    config = Config(str(ALEMBIC_INI))
    # Absolute, so it works from any working directory.
    config.set_main_option("script_location", str(PROJECT_ROOT / "bot" / "store" / "migrations"))
    config.attributes["configure_logger"] = False
    return config


def upgrade_to_head(url: str | Engine | None = None) -> None:
    """Migrate the database at `url` (an engine, a URL or DATABASE_URL) to head.

    Safe to call on every start: at head it does nothing, and concurrent
    callers are serialised (BEGIN IMMEDIATE on SQLite, an advisory lock on
    PostgreSQL).
    """
    if isinstance(url, Engine):
        engine, owned = url, False
    else:
        engine, owned = make_engine(url or get_settings().database_url), True
    try:
        with engine.connect() as connection, migrating(connection), connection.begin():
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            check_foreign_keys(connection)
    finally:
        if owned:
            engine.dispose()
