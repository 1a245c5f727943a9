"""Open311 tests: the web app (aiohttp test client) on a demo database."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import Engine

from bot.apikeys import create_key
from bot.routing.directory import apply_directory, load_directory_file
from bot.routing.locator import refresh_locator
from bot.settings import PROJECT_ROOT, get_settings, load_settings
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.web.app import create_app

DEMO_FILE = PROJECT_ROOT / "data" / "grids" / "jinan-demo.yml"
BASE = "/open311/v2"


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once per session, with the demo directory; tests get copies."""
    path = tmp_path_factory.mktemp("open311-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    with session_scope(engine) as session:
        apply_directory(session, load_directory_file(DEMO_FILE))
    engine.dispose()  # the last close checkpoints the WAL into the file
    return path


@pytest.fixture
def demo_engine(
    demo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """A fresh SQLite file with the demo directory; DATABASE_URL points at it."""
    path = tmp_path / "open311.db"
    shutil.copyfile(demo_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("WEB_SECRET_KEY", "open311-tests")
    monkeypatch.setenv("ADMIN_PASSWORD", "open311-tests-admin")
    get_settings.cache_clear()
    refresh_locator()
    engine = make_engine(url)
    yield engine
    engine.dispose()
    get_settings.cache_clear()
    refresh_locator()


@pytest.fixture
async def client(demo_engine: Engine) -> AsyncIterator[TestClient]:
    app = create_app(load_settings(), engine=demo_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.fixture
def api_key(demo_engine: Engine) -> str:
    """A fresh key, as `python -m bot apikeys create` makes one."""
    with session_scope(demo_engine) as session:
        return create_key(session, "测试系统", created_by="tests").token


@pytest.fixture
def read_key(demo_engine: Engine) -> str:
    """A key of a city system that may read full records (and post)."""
    with session_scope(demo_engine) as session:
        return create_key(session, "区平台", created_by="tests", scopes=("read", "write")).token
