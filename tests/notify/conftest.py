"""Fixtures of the notification tests: a demo database with robot keys, a fake WeCom
group robot and a fake WeChat API, both aiohttp servers on 127.0.0.1 injected through
settings (wecom_api_base / wechat_api_base)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.routing.directory import apply_directory, load_directory_file
from bot.routing.locator import get_locator, refresh_locator
from bot.settings import PROJECT_ROOT, Settings, get_settings
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.store.models import Community, Grid, Notification, Ticket
from bot.tickets import service
from tests.fakes import APP_SECRET, APPID, FakeRobot, FakeWeChatApi

GRID_KEY = "grid-key-hpxc-01"
OFFICE_KEY = "office-key-hpxc"
BASE_URL = "https://wangge.example.cn"
RESIDENT = "oResidentNotify0000000000001"


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated, with the demo directory; HPXC-01 and 和平新村社区 have robot keys."""
    path = tmp_path_factory.mktemp("notify-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_to_head(engine)
    with session_scope(engine) as session:
        apply_directory(session, load_directory_file(PROJECT_ROOT / "data/grids/jinan-demo.yml"))
        grid = session.execute(select(Grid).where(Grid.code == "HPXC-01")).scalar_one()
        grid.wecom_webhook_key = GRID_KEY
        community = session.execute(
            select(Community).where(Community.name == "和平新村社区")
        ).scalar_one()
        community.wecom_webhook_key = OFFICE_KEY
    engine.dispose()  # the last close checkpoints the WAL into the file
    return path


@pytest.fixture
def engine(template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A copy of the template database; DATABASE_URL points at it, so code using the
    process's engine (frontdesk, the WeChat channel) works on it too."""
    path = tmp_path / "notify.db"
    shutil.copy(template_db, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("WEB_BASE_URL", BASE_URL)
    monkeypatch.setenv("TZ_NAME", "Asia/Shanghai")
    get_settings.cache_clear()
    refresh_locator()
    engine = make_engine(url)
    yield engine
    engine.dispose()
    get_settings.cache_clear()
    refresh_locator()


def open_report(
    engine: Engine,
    message_id: str = "m1",
    *,
    address: str = "和平新村3号楼2单元501",
    category: str = "HEATING",
    description: str = "暖气不热，屋里才十五度",
    sender_id: str = RESIDENT,
    channel: str = "wechat",
) -> str:
    """Open a ticket as the actions do; returns its number."""
    with session_scope(engine) as session:
        located = get_locator(session).locate_text(address)
        ticket = service.open_ticket(
            session,
            sender_id=sender_id,
            channel=channel,
            message_id=message_id,
            category_code=category,
            description=description,
            original_text=description,
            location=located,
        )
        return ticket.number


def notifications(engine: Engine, **where: Any) -> list[Notification]:
    with Session(engine, future=True, expire_on_commit=False) as session:
        query = select(Notification).order_by(Notification.id)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        return list(session.execute(query).scalars())


def ticket_status(engine: Engine, number: str) -> str:
    with Session(engine, future=True) as session:
        return session.execute(select(Ticket.status).where(Ticket.number == number)).scalar_one()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def settings(engine: Engine, fake_robot: FakeRobot, fake_wechat_api: FakeWeChatApi) -> Settings:
    """The process settings pointed at the fakes (after `engine` set the environment)."""
    return replace(
        get_settings(),
        wecom_api_base=fake_robot.url,
        wechat_api_base=fake_wechat_api.url,
        wechat_appid=APPID,
        wechat_app_secret=APP_SECRET,
    )
