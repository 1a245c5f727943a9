"""Bring a database schema to the newest migration, from code."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from bot.settings import PROJECT_ROOT, get_settings
from bot.store.db import make_engine

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


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
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if owned:
            engine.dispose()
