"""Fixtures for the WeChat channel: the channel on a real Sanic server with a fake Rasa,
and a fake WeChat API server. Everything listens on 127.0.0.1 with free ports.

No trained model is needed: `FakeRasa` stands in for `agent.handle_message`, answering
through the output channel the way Rasa does (`send_response` per bot message).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from bot.channels.wechat import WeChatConfig, WeChatInput
from bot.channels.wechat_crypto import WXBizMsgCrypt, compute_signature
from bot.channels.wechat_protocol import new_nonce
from bot.channels.wechat_sender import DEFAULT_ACCOUNT, build_incoming_xml, sign_request
from tests.fakes import Handler, serve_on_loopback

TOKEN = "test-token"
APPID = "wxb11529c136998cb6"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_SECRET = "test-secret"
USER = "oTestUser0000000000000000001"

Sanic.test_mode = True  # several apps per process


@dataclass
class FakeRasa:
    """Records every UserMessage; answers with `replies` after `delay` seconds."""

    replies: list[dict[str, Any]] = field(default_factory=lambda: [{"text": "好的"}])
    delay: float = 0.0
    fail: bool = False
    calls: list[UserMessage] = field(default_factory=list)
    responder: Callable[[UserMessage], list[dict[str, Any]]] | None = None

    async def __call__(self, message: UserMessage) -> None:
        self.calls.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("rasa blew up")
        replies = self.responder(message) if self.responder else self.replies
        for reply in replies:
            await message.output_channel.send_response(message.sender_id, dict(reply))


@dataclass
class FakeWeChatApi:
    """WeChat's token and customer-service endpoints, recording what they receive."""

    url: str = ""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    send_tokens: list[str] = field(default_factory=list)
    # errcodes to answer the next sends with (then 0); a token error makes the current
    # token invalid, as when another process refreshed it.
    send_errcodes: list[int] = field(default_factory=list)
    expires_in: int = 7200
    issued: int = 0
    current_token: str | None = None
    sent_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests.append(dict(request.query))
        if request.query.get("appid") != APPID or request.query.get("secret") != APP_SECRET:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.issued += 1
        self.current_token = f"ACCESS_TOKEN_{self.issued}"
        return web.json_response(
            {"access_token": self.current_token, "expires_in": self.expires_in}
        )

    async def send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        self.send_tokens.append(token)
        if token != self.current_token:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        if self.send_errcodes:
            errcode = self.send_errcodes.pop(0)
            if errcode in (40001, 42001):
                self.current_token = None
            return web.json_response({"errcode": errcode, "errmsg": "fake error"})
        raw = await request.read()
        self.sends.append({"raw": raw, "json": await request.json()})
        self.sent_event.set()
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def wait_for_sends(self, count: int, timeout: float = 5.0) -> None:
        async def wait() -> None:
            while len(self.sends) < count:
                self.sent_event.clear()
                await self.sent_event.wait()

        await asyncio.wait_for(wait(), timeout)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/cgi-bin/token", self.token),
            ("POST", "/cgi-bin/message/custom/send", self.send),
        ]


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeWeChatApi]:
    fake = FakeWeChatApi()
    async with serve_on_loopback(fake.routes()) as url:
        fake.url = url
        yield fake


@dataclass
class WeChatServer:
    """The channel mounted as Rasa mounts it, plus helpers to post like WeChat."""

    url: str
    channel: WeChatInput
    rasa: FakeRasa
    session: aiohttp.ClientSession
    account: str = DEFAULT_ACCOUNT

    @property
    def webhook(self) -> str:
        return self.url + "/webhooks/wechat/webhook"

    @property
    def crypto(self) -> WXBizMsgCrypt | None:
        return self.channel.crypto

    async def post_raw(
        self, body: bytes | str, params: dict[str, str] | None = None
    ) -> tuple[int, str]:
        data = body.encode("utf-8") if isinstance(body, str) else body
        async with self.session.post(self.webhook, params=params or {}, data=data) as resp:
            return resp.status, (await resp.read()).decode("utf-8", "replace")

    def signed_params(self) -> dict[str, str]:
        timestamp, nonce = "1714036504", new_nonce()
        return {
            "signature": compute_signature(TOKEN, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": USER,
        }

    async def post_signed(self, body: bytes | str) -> tuple[int, str]:
        """A plaintext body with a valid query signature."""
        return await self.post_raw(body, self.signed_params())

    async def post_message(
        self, text: str | None = None, *, encrypt: bool | None = None, **kwargs: Any
    ) -> tuple[int, str]:
        """A message built and signed like WeChat (encrypted when the channel is safe)."""
        kwargs.setdefault("user", USER)
        xml = build_incoming_xml(text, **kwargs)
        use_crypto = self.crypto if (encrypt is None or encrypt) else None
        params, body = sign_request(xml, token=TOKEN, user=kwargs["user"], crypto=use_crypto)
        return await self.post_raw(body, params)


ServerFactory = Callable[..., Awaitable[WeChatServer]]


@pytest.fixture
async def wechat_server() -> AsyncIterator[ServerFactory]:
    """Factory: `await wechat_server(rasa=FakeRasa(...), **config)` -> a running server."""
    started: list[tuple[Any, Any, aiohttp.ClientSession]] = []

    async def start(rasa: FakeRasa | None = None, **config: Any) -> WeChatServer:
        rasa = rasa or FakeRasa()
        config.setdefault("token", TOKEN)
        config.setdefault("api_base", "http://127.0.0.1:9")  # nothing there unless given
        channel = WeChatInput(WeChatConfig(**config))
        app = Sanic(f"wechat_test_{uuid.uuid4().hex}")
        # Mounted by Rasa's own `register`, whose handler calls agent.handle_message.
        app.ctx.agent = SimpleNamespace(handle_message=rasa)
        register([channel], app, route="/webhooks/")
        # A socket bound here: Sanic turns port 0 into 8000.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # Awaiting create_server already starts listening (AsyncioServer.__await__).
        server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
        await server.startup()
        await server.before_start()
        await server.after_start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        started.append((server, channel, session))
        return WeChatServer(f"http://127.0.0.1:{port}", channel, rasa, session)

    try:
        yield start
    finally:
        for server, channel, session in started:
            await session.close()
            await server.before_stop()
            server.close()
            await server.wait_closed()
            await server.after_stop()
            for task in list(channel._background):
                task.cancel()
