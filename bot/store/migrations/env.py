"""Alembic environment.

Where the database is, in order: a connection handed over by
bot.store.migrate (config.attributes["connection"]), a URL in
config.attributes["url"], `alembic -x url=...`, sqlalchemy.url in alembic.ini,
and finally DATABASE_URL through bot.settings.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import text

from bot.settings import get_settings
from bot.store.db import is_sqlite, make_engine
from bot.store.migrate import check_foreign_keys, migrating
from bot.store.models import metadata

config = context.config

# Only the alembic command line configures logging; code calling
# upgrade_to_head keeps its own logging setup.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Any number distinct from other advisory locks of the application.
PG_MIGRATION_LOCK = 7_316_001


def _url() -> str:
    return (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or get_settings().database_url
    )


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode copies tables instead.
        # (Foreign keys are on for our SQLite connections: a batch migration
        # that rebuilds a referenced table must switch them off around it.)
        render_as_batch=connection.dialect.name == "sqlite",
        # bot.store.db issues BEGIN itself, so SQLite DDL is transactional
        # too: a failed migration leaves nothing half-done.
        transactional_ddl=True,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Processes started together (make run) may all migrate at once;
            # on SQLite BEGIN IMMEDIATE already serialises them.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"))
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection, migrating(connection):
            _run(connection)
            check_foreign_keys(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
