"""Fixtures for the resident simulator: the web app on a demo database, with a fake
webhook standing in for the Rasa server (WeChat's protocol checked on every request).

Everything listens on 127.0.0.1 on free ports; nothing needs a trained model.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import Engine

from bot.channels.wechat_crypto import WXBizMsgCrypt, compute_signature
from bot.channels.wechat_protocol import (
    IncomingMessage,
    build_encrypted_envelope,
    build_text_reply,
    parse_encrypted_envelope,
    parse_message,
)
from bot.routing.directory import apply_directory, load_directory_file
from bot.routing.locator import refresh_locator
from bot.settings import PROJECT_ROOT, Settings, load_settings
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.web.app import create_app

TOKEN = "sim-test-token"
ADMIN_PASSWORD = "sim-admin-pass-1234"  # the first admin, created at the app's start
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
APPID = "wxb11529c136998cb6"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # WeChat's documentation example


@dataclass
class Received:
    query: dict[str, str]
    body: bytes
    message: IncomingMessage


@dataclass
class FakeWebhook:
    """The webhook as the Rasa server serves it: checks the signature (and decrypts in
    safe mode) exactly as the WeChat channel must, records the message, answers with
    `answer(message)` as a passive reply ('' -> `success`)."""

    token: str = TOKEN
    crypto: WXBizMsgCrypt | None = None
    url: str = ""
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    answer: Callable[[IncomingMessage], str] = lambda message: f"收到：{message.content}"

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        body = await request.read()
        expected = compute_signature(self.token, query["timestamp"], query["nonce"])
        if query.get("signature") != expected:
            self.rejected.append("signature")
            return web.Response(status=403)
        if self.crypto is not None:
            if query.get("encrypt_type") != "aes":
                self.rejected.append("not encrypted")
                return web.Response(status=400)
            _to, encrypt = parse_encrypted_envelope(body)
            plain = self.crypto.verify_and_decrypt(
                query.get("msg_signature"), query["timestamp"], query["nonce"], encrypt
            )
            message = parse_message(plain)
        else:
            message = parse_message(body)
        self.received.append(Received(query, body, message))
        text = self.answer(message)
        if not text:
            return web.Response(text="success")
        reply = build_text_reply(message, text)
        if self.crypto is not None:
            reply = build_encrypted_envelope(self.crypto, reply)
        return web.Response(text=reply, content_type="application/xml")


@pytest.fixture
def demo_engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh database holding the demo directory."""
    refresh_locator()
    engine = make_engine(f"sqlite:///{tmp_path / 'simulator.db'}")
    upgrade_to_head(engine)
    with session_scope(engine) as session:
        apply_directory(session, load_directory_file(PROJECT_ROOT / "data/grids/jinan-demo.yml"))
    yield engine
    engine.dispose()
    refresh_locator()


def make_settings(engine: Engine, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": str(engine.url),
        "wechat_token": TOKEN,
        "wechat_appid": None,
        "wechat_aes_key": None,
        "wechat_aes_key_previous": None,
        "wechat_app_secret": None,
        "wechat_api_base": "http://127.0.0.1:9",
        "rasa_url": "http://127.0.0.1:9",
        "simulator_enabled": True,
        "admin_password": ADMIN_PASSWORD,
    }
    values.update(overrides)
    return replace(load_settings(), **values)


async def login_admin(client: TestClient) -> None:
    """Log `client` in as the first admin, and send the CSRF header from now on
    (the simulator is for logged-in admins only, as the page's script does)."""
    page = await (await client.get("/login")).text()
    token = CSRF_RE.search(page).group(1)
    response = await client.post(
        "/login",
        data={"phone": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    page = await (await client.get("/simulator")).text()
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    client.session.headers["X-CSRF-Token"] = meta.group(1)


@dataclass
class Harness:
    client: TestClient
    webhook: FakeWebhook
    settings: Settings
    engine: Engine

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))


async def start_harness(
    engine: Engine, *, safe_mode: bool = False, **overrides: Any
) -> tuple[Harness, list[Any]]:
    crypto = WXBizMsgCrypt(TOKEN, AES_KEY, APPID) if safe_mode else None
    webhook = FakeWebhook(crypto=crypto)
    hook_app = web.Application()
    hook_app.router.add_post("/webhooks/wechat/webhook", webhook.handle)
    hook_server = TestServer(hook_app, host="127.0.0.1")
    await hook_server.start_server()
    rasa_url = str(hook_server.make_url("")).rstrip("/")
    if safe_mode:
        overrides.setdefault("wechat_appid", APPID)
        overrides.setdefault("wechat_aes_key", AES_KEY)
    settings = make_settings(engine, rasa_url=rasa_url, **overrides)
    client = TestClient(TestServer(create_app(settings, engine=engine), host="127.0.0.1"))
    await client.start_server()
    if settings.simulator_enabled:
        await login_admin(client)
    return Harness(client, webhook, settings, engine), [client, hook_server]


@pytest.fixture
async def harness(demo_engine: Engine) -> AsyncIterator[Harness]:
    """The web app (plaintext mode) in front of a fake webhook."""
    h, closers = await start_harness(demo_engine)
    yield h
    for closer in closers:
        await closer.close()


@pytest.fixture
async def safe_harness(demo_engine: Engine) -> AsyncIterator[Harness]:
    """The same in WeChat's safe mode (AES)."""
    h, closers = await start_harness(demo_engine, safe_mode=True)
    yield h
    for closer in closers:
        await closer.close()
