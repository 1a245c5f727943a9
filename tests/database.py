"""Database fixtures of the tests of bot/ (no Rasa), a plugin of tests/conftest.py.

Database tests run on SQLite always and on PostgreSQL too when
TEST_DATABASE_URL is set. SQLite: each test gets a copy of a database file
migrated once per session. PostgreSQL: one schema per test session (created,
migrated, dropped at the end), truncated before each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from bot.routing.directory import Directory, apply_directory, load_directory_file
from bot.routing.locator import Locator, refresh_locator
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.store.models import metadata
from tests.helpers import DEMO_FILE

PG_ENV = "TEST_DATABASE_URL"
PG_SKIP = (
    f"{PG_ENV} not set: PostgreSQL half skipped "
    f"(e.g. {PG_ENV}=postgresql://postgres@127.0.0.1:5432/test)"
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("core-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    engine.dispose()  # NullPool: the last close checkpoints and removes the WAL
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(PG_SKIP)
    schema = f"test_core_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        upgrade_to_head(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "core.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_url")
    _truncate_pg(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    refresh_locator()
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
    refresh_locator()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, future=True, expire_on_commit=False) as s:
        yield s


@pytest.fixture(scope="session")
def demo_directory() -> Directory:
    return load_directory_file(DEMO_FILE)


@pytest.fixture(scope="session")
def demo_locator(demo_directory: Directory) -> Locator:
    return Locator.from_directory(demo_directory)


@pytest.fixture
def demo_engine(engine: Engine, demo_directory: Directory) -> Engine:
    """An engine whose database holds the demo grid directory."""
    with session_scope(engine) as s:
        apply_directory(s, demo_directory)
    return engine


@pytest.fixture
def demo_session(demo_engine: Engine) -> Iterator[Session]:
    with Session(demo_engine, future=True, expire_on_commit=False) as s:
        yield s
