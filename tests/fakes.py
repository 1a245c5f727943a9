"""Fakes of outside services run as real HTTP servers on 127.0.0.1.

WeChat's API (`FakeWeChatApi`) and a WeCom group robot (`FakeRobot`); the
fixtures `fake_wechat_api` and `fake_robot` (tests/conftest.py) serve them.
`TrackerLog` writes Rasa's conversation log as Rasa's SQL tracker store does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from bot.conversation_log import RASA_EVENTS_DDL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve_on_loopback(routes: Iterable[tuple[str, str, Handler]]) -> AsyncIterator[str]:
    """Serve (method, path, handler) routes on a free loopback port; yields the base URL."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


# The account the fake WeChat API knows (WeChat's documentation example appid).
APPID = "wxb11529c136998cb6"
APP_SECRET = "test-secret"


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
    # temporary media: MediaId -> (content type, bytes); other ids answer 40007
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    media_requests: list[str] = field(default_factory=list)
    # template messages (service accounts): what arrived; errcodes to answer first
    templates: list[dict[str, Any]] = field(default_factory=list)
    template_errcodes: list[int] = field(default_factory=list)
    # web authorisation: codes issued (code -> OpenID), codes exchanged once already,
    # every exchange request; the authorisation page signs in `authorize_as`.
    oauth_codes: dict[str, str] = field(default_factory=dict)
    oauth_used: set[str] = field(default_factory=set)
    oauth_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_as: str | None = None
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    # menus created (the JSON bodies) and the tokens they carried
    menus: list[dict[str, Any]] = field(default_factory=list)

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

    async def media_get(self, request: web.Request) -> web.Response:
        media_id = request.query.get("media_id", "")
        self.media_requests.append(media_id)
        if request.query.get("access_token") != self.current_token:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        if media_id not in self.media:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        content_type, data = self.media[media_id]
        return web.Response(
            body=data,
            content_type=content_type,
            headers={"Content-disposition": f'attachment; filename="{media_id}.jpg"'},
        )

    async def template_send(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") != self.current_token:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        if self.template_errcodes:
            return web.json_response(
                {"errcode": self.template_errcodes.pop(0), "errmsg": "fake error"}
            )
        self.templates.append(await request.json())
        self.sent_event.set()
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": len(self.templates)})

    def issue_oauth_code(self, openid: str) -> str:
        """A code as WeChat's authorisation page would hand out for `openid`."""
        code = f"CODE{len(self.oauth_codes) + 1:04d}x{openid[-6:].replace('-', 'x')}"
        self.oauth_codes[code] = openid
        return code

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        """WeChat's authorisation page (open.weixin.qq.com): back to redirect_uri with
        a fresh code for `authorize_as` and the state it was given."""
        self.authorize_requests.append(dict(request.query))
        if request.query.get("appid") != APPID or not self.authorize_as:
            return web.Response(status=400, text="bad appid")
        code = self.issue_oauth_code(self.authorize_as)
        target = URL(request.query["redirect_uri"]).update_query(
            code=code, state=request.query.get("state", "")
        )
        raise web.HTTPFound(str(target))

    async def oauth_access_token(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.oauth_requests.append(query)
        if query.get("appid") != APPID or query.get("secret") != APP_SECRET:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        code = query.get("code", "")
        if code in self.oauth_used:
            return web.json_response({"errcode": 40163, "errmsg": "code been used"})
        openid = self.oauth_codes.get(code)
        if openid is None or query.get("grant_type") != "authorization_code":
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        self.oauth_used.add(code)
        return web.json_response(
            {
                "access_token": "WEB_ACCESS_TOKEN",
                "expires_in": 7200,
                "refresh_token": "REFRESH",
                "openid": openid,
                "scope": "snsapi_base",
            }
        )

    async def menu_create(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") != self.current_token:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        self.menus.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/cgi-bin/token", self.token),
            ("POST", "/cgi-bin/message/custom/send", self.send),
            ("GET", "/cgi-bin/media/get", self.media_get),
            ("POST", "/cgi-bin/message/template/send", self.template_send),
            ("GET", "/connect/oauth2/authorize", self.authorize),
            ("GET", "/sns/oauth2/access_token", self.oauth_access_token),
            ("POST", "/cgi-bin/menu/create", self.menu_create),
        ]


# The smallest pictures of each kind we accept (valid headers; enough for the checks).
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201ae7d0a8f0000000049454e44ae426082"
)
JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64


@dataclass
class FakeRobot:
    """POST /cgi-bin/webhook/send?key=...; answers from `script`, then errcode 0.

    Script entries: ("ok",), ("http", status), ("errcode", code), ("sleep", seconds).
    """

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    script: list[tuple[Any, ...]] = field(default_factory=list)
    delay: float = 0.0
    always: tuple[Any, ...] | None = None

    async def send(self, request: web.Request) -> web.Response:
        step = self.script.pop(0) if self.script else (self.always or ("ok",))
        if self.delay:
            await asyncio.sleep(self.delay)
        if step[0] == "sleep":
            await asyncio.sleep(step[1])
        if step[0] == "http":
            return web.Response(status=step[1], text="server error")
        if step[0] == "errcode":
            return web.json_response({"errcode": step[1], "errmsg": "fake refusal"})
        raw = await request.read()
        self.received.append(
            {"key": request.query.get("key"), "json": await request.json(), "raw": raw}
        )
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def contents(self) -> list[str]:
        return [r["json"]["markdown"]["content"] for r in self.received]


# -- Rasa's conversation log ------------------------------------------------------------


class TrackerLog:
    """Writes events the way Rasa's SQL tracker store does (plain SQL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.clock = time.time() - 3600
        with sqlite3.connect(path) as connection:
            for ddl in RASA_EVENTS_DDL:
                connection.execute(ddl)

    def _insert(
        self,
        sender: str,
        type_name: str,
        stamp: float,
        intent: str | None,
        action: str | None,
        data: dict,
    ) -> int:
        with sqlite3.connect(self.path) as connection:
            cursor = connection.execute(
                "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, "
                "data) VALUES (?, ?, ?, ?, ?, ?)",
                (sender, type_name, stamp, intent, action, json.dumps(data)),
            )
            return int(cursor.lastrowid)

    def user(
        self,
        text: str,
        intent: str | None = "greet",
        confidence: float = 0.9,
        second: str | None = None,
        second_confidence: float = 0.0,
        *,
        sender: str = "oResident1",
        at: float | None = None,
        fallback: bool = False,
        original: str | None = None,
    ) -> int:
        """Log a resident message (and the action_listen after it); its event id."""
        self.clock += 60
        stamp = at if at is not None else self.clock
        ranking = []
        if intent:
            ranking.append({"name": intent, "confidence": confidence})
        if second:
            ranking.append({"name": second, "confidence": second_confidence})
        predicted = {"name": intent, "confidence": confidence}
        if fallback:
            predicted = {"name": "nlu_fallback", "confidence": 0.4}
            ranking.insert(0, dict(predicted))
        parse = {
            "intent": predicted,
            "entities": [],
            "text": text,
            "message_id": f"m{stamp}",
            "metadata": {},
            "intent_ranking": ranking,
        }
        if original is not None:
            parse["original_text"] = original
        data = {
            "event": "user",
            "timestamp": stamp,
            "metadata": {},
            "text": original if original is not None else text,
            "parse_data": parse,
            "input_channel": "wechat",
            "message_id": f"m{stamp}",
        }
        event_id = self._insert(sender, "user", stamp, predicted["name"], None, data)
        self._insert(
            sender,
            "action",
            stamp + 0.5,
            None,
            "action_listen",
            {"event": "action", "timestamp": stamp + 0.5, "name": "action_listen"},
        )
        return event_id

    def bot(self, text: str, *, sender: str = "oResident1", at: float | None = None) -> int:
        """Log the assistant's answer (a `bot` event: never a resident's message)."""
        self.clock += 1
        stamp = at if at is not None else self.clock
        return self._insert(
            sender, "bot", stamp, None, None, {"event": "bot", "timestamp": stamp, "text": text}
        )
