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
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic

from bot.channels.wechat import WeChatConfig, WeChatInput
from bot.channels.wechat_crypto import WXBizMsgCrypt, compute_signature
from bot.channels.wechat_protocol import new_nonce
from bot.channels.wechat_sender import DEFAULT_ACCOUNT, build_incoming_xml, sign_request
from bot.coordination import SharedState

TOKEN = "test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
USER = "oTestUser0000000000000000001"
BUSY = "系统忙，请稍后再发一次。"

Sanic.test_mode = True  # several apps per process


@dataclass
class FakeRasa:
    """Records every UserMessage; answers with `replies` after `delay` seconds."""

    replies: list[dict[str, Any]] = field(default_factory=lambda: [{"text": "好的"}])
    delay: float = 0.0
    fail: bool = False
    ready: bool = True  # a model loaded (Rasa's agent.is_ready())
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

    async def start(
        rasa: FakeRasa | None = None,
        *,
        shared: SharedState | None = None,
        busy_text: str = BUSY,
        **config: Any,
    ) -> WeChatServer:
        """`shared`: the state several servers share (bot.coordination)."""
        rasa = rasa or FakeRasa()
        config.setdefault("token", TOKEN)
        config.setdefault("api_base", "http://127.0.0.1:9")  # nothing there unless given
        channel = WeChatInput(WeChatConfig(**config), shared=shared, busy_text=busy_text)
        app = Sanic(f"wechat_test_{uuid.uuid4().hex}")
        # Mounted by Rasa's own `register`, whose handler calls agent.handle_message.
        app.ctx.agent = SimpleNamespace(handle_message=rasa, is_ready=lambda: rasa.ready)
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
