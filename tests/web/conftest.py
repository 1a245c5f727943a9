"""Fixtures of the web app tests: a demo database, the app, logged-in clients.

- `web_db_url`: a fresh SQLite file (copy of a session template) holding the
  demo directory and one account per role, all with password `PASSWORD`
  (admin: `ADMIN_PASSWORD`); see `ACCOUNTS`.
- `web_engine`, `web_settings`, `web_app`, `web_server`: the app on a test server,
  with outside services pointed at a closed port of 127.0.0.1.
- `anon_client`, `worker_client`, `other_worker_client`, `staff_client`,
  `admin_client`: `WebClient`s (an aiohttp TestClient with its own cookies);
  `client_factory()` makes more, `await client.login(phone, password)`.
- `add_ticket(engine, ...)`: open a ticket through the service, returns its number.
- `tracker`: a `TrackerLog` (tests/fakes.py) writing Rasa's conversation log where
  the app reads it; `copy_log()` copies it into the review inbox; `nlu_dir`: a
  copy of data/nlu (what the review export writes into). The app's background
  copy of the log is off.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.accounts import ensure_first_admin, set_password
from bot.conversation_log import ConversationLog
from bot.review.ingest import IngestResult, ingest
from bot.routing.directory import apply_directory, load_directory_file
from bot.routing.locator import get_locator
from bot.settings import PROJECT_ROOT, Settings, load_settings
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.store.models import Community, Worker, utcnow
from bot.tickets.service import open_ticket
from bot.web.app import create_app
from tests.fakes import TrackerLog

DEMO_FILE = PROJECT_ROOT / "data" / "grids" / "jinan-demo.yml"
PASSWORD = "grid-worker-pass"
ADMIN_PASSWORD = "admin-pass-1234"
SECRET = "test-web-secret-key"
NOWHERE = "http://127.0.0.1:9"  # discard port: nothing leaves the machine


@dataclass(frozen=True)
class Account:
    name: str
    phone: str
    role: str
    password: str = PASSWORD


# The demo directory's grid workers (王芳: HPXC-01, 陈静: YY-01), community staff
# added here, and the first admin.
ACCOUNTS = {
    "worker": Account("王芳", "13800000001", "grid_worker"),
    "other_worker": Account("陈静", "13800000005", "grid_worker"),
    "staff": Account("周敏", "13900000001", "community_staff"),  # 和平新村社区
    "other_staff": Account("吴刚", "13900000002", "community_staff"),  # 裕园社区
    "admin": Account("管理员", "admin", "admin", ADMIN_PASSWORD),
}
STAFF_COMMUNITIES = {"staff": "和平新村社区", "other_staff": "裕园社区"}


def _prepare(engine: Engine) -> None:
    upgrade_to_head(engine)
    with session_scope(engine) as session:
        apply_directory(session, load_directory_file(DEMO_FILE))
        for key, community in STAFF_COMMUNITIES.items():
            account = ACCOUNTS[key]
            community_id = session.execute(
                select(Community.id).where(Community.name == community)
            ).scalar_one()
            session.add(
                Worker(
                    name=account.name,
                    phone=account.phone,
                    role="community_staff",
                    community_id=community_id,
                )
            )
        session.flush()
        ensure_first_admin(session, ADMIN_PASSWORD)
        for key, account in ACCOUNTS.items():
            if key != "admin":
                set_password(session, account.phone, account.password)


@pytest.fixture(scope="session")
def web_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    _prepare(engine)
    engine.dispose()  # the last close checkpoints the WAL into the file
    return path


@pytest.fixture
def web_db_url(tmp_path: Path, web_template_db: Path) -> str:
    path = tmp_path / "web.db"
    shutil.copy(web_template_db, path)
    return f"sqlite:///{path}"


@pytest.fixture
def web_engine(web_db_url: str) -> Iterator[Engine]:
    engine = make_engine(web_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def tracker_path(tmp_path: Path) -> Path:
    return tmp_path / "conversations.db"


@pytest.fixture
def tracker(tracker_path: Path) -> TrackerLog:
    return TrackerLog(tracker_path)


@pytest.fixture
def nlu_dir(tmp_path: Path) -> Path:
    target = tmp_path / "nlu"
    target.mkdir()
    for path in (PROJECT_ROOT / "data" / "nlu").glob("*.yml"):
        if path.name != "reviewed.yml":
            shutil.copy(path, target / path.name)
    return target


@pytest.fixture
def copy_log(web_engine: Engine, tracker: TrackerLog) -> Iterator:
    """`copy_log()`: ingest everything new of the test's log into the test database."""
    log = ConversationLog(tracker.url)

    def run() -> IngestResult:
        return ingest(web_engine, log)

    yield run
    log.dispose()


@pytest.fixture
def web_settings(web_db_url: str, tracker_path: Path, nlu_dir: Path) -> Settings:
    return replace(
        load_settings(),
        database_url=web_db_url,
        # absent unless a test writes it (`tracker`): the pages must do without
        tracker_database_url=f"sqlite:///{tracker_path}",
        web_secret_key=SECRET,
        admin_password=ADMIN_PASSWORD,
        web_cookie_secure=False,
        wecom_api_base=NOWHERE,
        wechat_api_base=NOWHERE,
        rasa_url=NOWHERE,
        nlu_data_dir=nlu_dir,
        review_ingest_interval_seconds=0,  # tests copy the log when they want to
    )


@pytest.fixture
def web_app(web_settings: Settings, web_engine: Engine) -> aiohttp.web.Application:
    return create_app(web_settings, engine=web_engine)


@pytest.fixture
async def web_server(web_app: aiohttp.web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(web_app)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


class WebClient:
    """A browser: its own cookies, helpers for logging in and posting forms."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.account: Account | None = None

    def __getattr__(self, name: str) -> Any:  # get, post, request, session ...
        return getattr(self.client, name)

    async def csrf(self, path: str = "/login") -> str:
        """A valid CSRF token, read from a page's form like a browser would."""
        response = await self.client.get(path)
        return csrf_from(await response.text())

    async def login(self, phone: str, password: str) -> aiohttp.ClientResponse:
        token = await self.csrf("/login")
        return await self.client.post(
            "/login",
            data={"phone": phone, "password": password, "csrf_token": token},
            allow_redirects=False,
        )

    async def post_form(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True
    ) -> aiohttp.ClientResponse:
        """POST a form as the page would (with its CSRF token unless csrf=False)."""
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = await self.csrf("/")
        return await self.client.post(path, data=form, allow_redirects=False)


ClientFactory = Callable[..., Awaitable[WebClient]]


@pytest.fixture
async def client_factory(web_server: TestServer) -> AsyncIterator[ClientFactory]:
    """`await client_factory("worker")` -> a WebClient logged in as ACCOUNTS[key];
    `await client_factory()` -> a logged-out one."""
    clients: list[TestClient] = []

    async def make(account: str | None = None) -> WebClient:
        client = TestClient(web_server)
        await client.start_server()
        clients.append(client)
        web_client = WebClient(client)
        if account is not None:
            acc = ACCOUNTS[account]
            response = await web_client.login(acc.phone, acc.password)
            assert response.status == 303, await response.text()
            web_client.account = acc
        return web_client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()  # the first also stops the server; that is idempotent


@pytest.fixture
async def anon_client(client_factory: ClientFactory) -> WebClient:
    return await client_factory()


@pytest.fixture
async def worker_client(client_factory: ClientFactory) -> WebClient:
    return await client_factory("worker")


@pytest.fixture
async def other_worker_client(client_factory: ClientFactory) -> WebClient:
    return await client_factory("other_worker")


@pytest.fixture
async def staff_client(client_factory: ClientFactory) -> WebClient:
    return await client_factory("staff")


@pytest.fixture
async def admin_client(client_factory: ClientFactory) -> WebClient:
    return await client_factory("admin")


_counter = iter(range(10**9))


def add_ticket(
    engine: Engine,
    where: str = "和平新村3号楼2单元501",
    category: str = "HEATING",
    *,
    description: str = "暖气不热",
    original_text: str | None = "俺家暖气不热",
    sender_id: str = "oResident1",
    now: datetime | None = None,
    photos: tuple[str, ...] = (),
) -> str:
    """Open a ticket as a resident would (routed by the demo directory)."""
    with session_scope(engine) as session:
        located = get_locator(session).locate_text(where) if where else None
        ticket = open_ticket(
            session,
            sender_id=sender_id,
            channel="wechat",
            message_id=f"msg-{next(_counter)}",
            category_code=category,
            description=description,
            original_text=original_text,
            location=located,
            photos=photos,
            now=now or utcnow(),
        )
        return ticket.number
