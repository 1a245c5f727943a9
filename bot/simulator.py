"""The resident simulator: try the assistant without a WeChat account.

A browser cannot hold the account's token, so the web app plays WeChat's server:
the page hands it a message, and `relay` posts it to the real webhook with the real
protocol (bot.channels.wechat_sender: signed, encrypted in safe mode) and returns the
passive reply. Whatever the assistant pushes later (late answers, notices about a
ticket) goes through WeChat's customer-service API; in development that API's base URL
points at the web app's own stand-in (`Inbox` keeps what it receives, per OpenID) and
the page polls it.

A development tool: served only to logged-in admins, and only while no real
WeChat app secret is configured or when SIMULATOR_ENABLED switches it on.
Nothing here needs aiohttp's server; views/simulator.py is the HTTP face.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.channels import wechat_sender
from bot.settings import DEV_WECHAT_APP_SECRET, Settings
from bot.store.models import Grid, Ticket
from bot.tickets import display

# Development credentials for the customer-service API stand-in, used by `make run`
# only when no real WECHAT_APP_SECRET is configured. Plaintext mode: no AES key.
DEV_WECHAT_APPID = "wx0000neighbourhooddev"
API_PATH = "/simulator/wechat-api"

OPENID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TEXT_CHARS = 600  # WeChat caps a text message at 2,048 bytes; leave room
MAX_LABEL_CHARS = 100
MAX_URL_CHARS = 500
UNAVAILABLE = "该公众号暂时无法提供服务，请稍后再试"  # what WeChat shows on a failed reply

# -- development wiring (bot/launcher.py) ------------------------------------------------


def api_base(web_port: int) -> str:
    """Base URL of the customer-service API stand-in on the local web app."""
    return f"http://127.0.0.1:{web_port}{API_PATH}"


def development_settings(settings: Settings) -> Settings | None:
    """Settings whose WeChat API is the simulator's stand-in, or None to leave them be.

    Only when the simulator is on and no real app secret is configured: then nothing
    could reach residents anyway, and the simulator shows what would have been sent.
    A configured WECHAT_APPID is kept; plaintext mode stays plaintext (no AES key).
    """
    if not settings.simulator_enabled or settings.real_wechat_secret:
        return None
    return replace(
        settings,
        wechat_api_base=api_base(settings.web_port),
        wechat_appid=settings.wechat_appid or DEV_WECHAT_APPID,
        wechat_app_secret=DEV_WECHAT_APP_SECRET,
    )


# -- what the page sends ------------------------------------------------------------------


class InvalidRequest(ValueError):
    """The page sent something the simulator does not relay (message in Chinese)."""


@dataclass(frozen=True)
class Outgoing:
    """One message of the resident, as the page asked for it."""

    openid: str
    text: str | None = None
    location: tuple[float, float, str] | None = None
    image_url: str | None = None


def valid_openid(value: Any) -> str:
    if not isinstance(value, str) or not OPENID_PATTERN.match(value):
        raise InvalidRequest("OpenID 无效")
    return value


def parse_outgoing(data: Any) -> Outgoing:
    """Check a send request ({openid, text | location{lat,lon,label} | image_url})."""
    if not isinstance(data, dict):
        raise InvalidRequest("请求格式错误")
    openid = valid_openid(data.get("openid"))
    text, location, image_url = data.get("text"), data.get("location"), data.get("image_url")
    given = [v for v in (text, location, image_url) if v not in (None, "")]
    if len(given) != 1:
        raise InvalidRequest("请发送文字、位置或图片中的一种")
    if text not in (None, ""):
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest("消息不能为空")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidRequest(f"消息太长（最多{MAX_TEXT_CHARS}字）")
        return Outgoing(openid, text=text)
    if location not in (None, ""):
        if not isinstance(location, dict):
            raise InvalidRequest("位置格式错误")
        try:
            lat, lon = float(location["lat"]), float(location["lon"])
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRequest("位置格式错误") from error
        if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
            raise InvalidRequest("位置超出范围")
        label = location.get("label") or ""
        if not isinstance(label, str) or len(label) > MAX_LABEL_CHARS:
            raise InvalidRequest("位置名称无效")
        return Outgoing(openid, location=(lat, lon, label))
    if not isinstance(image_url, str) or len(image_url) > MAX_URL_CHARS:
        raise InvalidRequest("图片地址无效")
    if not image_url.startswith(("http://", "https://")):
        raise InvalidRequest("图片地址无效")
    return Outgoing(openid, image_url=image_url)


@dataclass(frozen=True)
class RelayResult:
    """The passive reply ('' with deferred=True: the webhook answered `success`)."""

    reply: str
    deferred: bool
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"reply": self.reply, "deferred": self.deferred, "error": self.error}


async def relay(
    settings: Settings, message: Outgoing, *, timeout_seconds: float = 10.0
) -> RelayResult:
    """Post `message` to the webhook exactly as WeChat's server would; its reply.

    Signed with the account's token, encrypted when safe mode is on; the reply is
    checked (and decrypted) as WeChat checks it. A failure reads as WeChat shows it.
    """
    try:
        reply = await wechat_sender.send(
            message.text,
            user=message.openid,
            url=settings.rasa_url.rstrip("/") + wechat_sender.WEBHOOK_PATH,
            location=message.location,
            image=message.image_url,
            token=settings.wechat_token,
            appid=settings.wechat_appid,
            aes_key=settings.wechat_aes_key,
            safe_mode=settings.wechat_safe_mode,  # explicit: never the process's env
            timeout_seconds=timeout_seconds,
        )
    except (wechat_sender.SenderError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        return RelayResult("", deferred=False, error=f"{UNAVAILABLE}（{type(e).__name__}）")
    return RelayResult(reply, deferred=reply == "")


# -- the customer-service API stand-in ----------------------------------------------------


@dataclass(frozen=True)
class InboxMessage:
    id: int
    openid: str
    msgtype: str
    content: str
    at: float

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "msgtype": self.msgtype, "content": self.content, "at": self.at}


class Inbox:
    """What was sent to residents through the stand-in, kept in memory per OpenID.

    Bounded both ways (the oldest OpenIDs and messages are dropped) so a simulator
    left running cannot grow without end. Ids rise across all residents, so a page
    asks for "after the last id I saw".
    """

    def __init__(self, max_per_user: int = 200, max_users: int = 1000) -> None:
        self._max_per_user = max_per_user
        self._max_users = max_users
        self._messages: OrderedDict[str, deque[InboxMessage]] = OrderedDict()
        self._next_id = 1
        self._tokens: OrderedDict[str, float] = OrderedDict()
        # Changes when the process restarts (ids start again at 1): pages then reset.
        self.instance = secrets.token_hex(4)

    # access tokens, as WeChat's token endpoint issues them
    def issue_token(self, lifetime: float = 7200.0) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + lifetime
        while len(self._tokens) > 100:
            self._tokens.popitem(last=False)
        return token

    def token_valid(self, token: str | None) -> bool:
        expires = self._tokens.get(token or "")
        return expires is not None and time.monotonic() < expires

    def deliver(self, openid: str, msgtype: str, content: str) -> InboxMessage:
        message = InboxMessage(self._next_id, openid, msgtype, content, time.time())
        self._next_id += 1
        box = self._messages.pop(openid, None) or deque(maxlen=self._max_per_user)
        box.append(message)
        self._messages[openid] = box  # most recently written last
        while len(self._messages) > self._max_users:
            self._messages.popitem(last=False)
        return message

    def since(self, openid: str, after: int = 0) -> list[InboxMessage]:
        return [m for m in self._messages.get(openid, ()) if m.id > after]


@dataclass(frozen=True)
class ApiAnswer:
    """A JSON body as WeChat's API answers (errcode 0 = ok)."""

    body: dict[str, Any]


def token_answer(inbox: Inbox, settings: Settings, query: dict[str, str]) -> ApiAnswer:
    """GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…"""
    if query.get("grant_type") != "client_credential":
        return ApiAnswer({"errcode": 40002, "errmsg": "invalid grant_type"})
    if not query.get("appid"):
        return ApiAnswer({"errcode": 41002, "errmsg": "appid missing"})
    if not query.get("secret"):
        return ApiAnswer({"errcode": 41004, "errmsg": "appsecret missing"})
    # When this process knows the secret, hold callers to it as WeChat would.
    if settings.wechat_app_secret and query["secret"] != settings.wechat_app_secret:
        return ApiAnswer({"errcode": 40125, "errmsg": "invalid appsecret"})
    return ApiAnswer({"access_token": inbox.issue_token(), "expires_in": 7200})


# What the stand-in's media API answers for any MediaId the simulator sent: the
# demo photo, so a picture sent in the simulator reaches the ticket as it would.
SIMULATOR_PHOTO = Path(__file__).parent / "web" / "static" / "simulator-photo.png"


def media_answer(inbox: Inbox, access_token: str | None, media_id: str | None) -> bytes | ApiAnswer:
    """GET /cgi-bin/media/get?access_token=…&media_id=…: the file, or WeChat's error."""
    if not inbox.token_valid(access_token):
        return ApiAnswer({"errcode": 40001, "errmsg": "invalid credential, access_token"})
    if not media_id or not media_id.startswith("media_"):
        return ApiAnswer({"errcode": 40007, "errmsg": "invalid media_id"})
    return SIMULATOR_PHOTO.read_bytes()


def custom_send_answer(inbox: Inbox, access_token: str | None, data: Any) -> ApiAnswer:
    """POST /cgi-bin/message/custom/send?access_token=… with WeChat's JSON body."""
    if not inbox.token_valid(access_token):
        return ApiAnswer({"errcode": 40001, "errmsg": "invalid credential, access_token"})
    if not isinstance(data, dict) or not data:
        return ApiAnswer({"errcode": 44002, "errmsg": "empty post data"})
    touser = data.get("touser")
    if not isinstance(touser, str) or not OPENID_PATTERN.match(touser):
        return ApiAnswer({"errcode": 40003, "errmsg": "invalid openid"})
    msgtype = data.get("msgtype")
    if msgtype == "text":
        text = data.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str) or not content:
            return ApiAnswer({"errcode": 44003, "errmsg": "empty news data"})
        inbox.deliver(touser, "text", content)
    elif isinstance(msgtype, str) and isinstance(data.get(msgtype), dict):
        # image, news, miniprogrampage…: shown as a line saying what arrived
        inbox.deliver(touser, msgtype, f"[{msgtype}]")
    else:
        return ApiAnswer({"errcode": 40008, "errmsg": "invalid message type"})
    return ApiAnswer({"errcode": 0, "errmsg": "ok"})


# -- what the page shows -----------------------------------------------------------------


@dataclass(frozen=True)
class DemoLocation:
    label: str
    lat: float
    lon: float


def demo_locations(session: Session, limit: int = 12) -> list[DemoLocation]:
    """One point inside each active grid with a polygon (its vertices' mean)."""
    grids = (
        session.execute(
            select(Grid).where(Grid.active.is_(True), Grid.polygon.isnot(None)).order_by(Grid.code)
        )
        .scalars()
        .all()
    )
    points = []
    for grid in grids:
        vertices = [v for v in grid.polygon or [] if isinstance(v, list | tuple) and len(v) == 2]
        if not vertices:
            continue
        lon = sum(float(v[0]) for v in vertices) / len(vertices)
        lat = sum(float(v[1]) for v in vertices) / len(vertices)
        community = grid.community.name if grid.community else ""
        points.append(DemoLocation(f"{community} {grid.name}", round(lat, 5), round(lon, 5)))
        if len(points) >= limit:
            break
    return points


def resident_tickets(
    session: Session, openid: str, timezone: str = "Asia/Shanghai", limit: int = 20
) -> list[dict[str, Any]]:
    """The resident's tickets, newest first, as the "我的工单" panel lists them."""
    tickets = (
        session.execute(
            select(Ticket)
            .where(Ticket.sender_id == openid)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    return [
        {
            "number": ticket.number,
            "category": display.category_label(ticket.category_code),
            "status": ticket.status,
            "status_label": display.status_label(ticket.status),
            "level": display.level_label(ticket.level),
            "community": ticket.community.name if ticket.community else None,
            "grid": ticket.grid.name if ticket.grid else None,
            "grid_code": ticket.grid.code if ticket.grid else None,
            "handler": display.handler_of(ticket),
            "created": display.resident_time(ticket.created_at, timezone),
            "description": ticket.description,
        }
        for ticket in tickets
    ]
