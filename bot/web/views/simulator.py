"""The resident simulator's pages and JSON (see bot/simulator.py for what it does).

Served only when settings.simulator_enabled (on while no real WeChat app secret
is configured, or switched on with SIMULATOR_ENABLED), and then the page and its
JSON only to logged-in admins: anyone else could read any OpenID's tickets and
speak as any resident. The stand-in of WeChat's API is called by our own
processes, not browsers: it answers only with an access token it issued.
"""

from __future__ import annotations

import json

import aiohttp_jinja2
from aiohttp import web

from bot import simulator
from bot.web import auth
from bot.web.db import run_db
from bot.web.keys import SETTINGS

INBOX = web.AppKey("simulator_inbox", simulator.Inbox)
PHOTO_PATH = "/static/simulator-photo.svg"
ADMIN = ("admin",)

# The page loads nothing but its own script and style; even if a reply carried markup
# it could not run.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install(app: web.Application) -> None:
    """The in-process inbox of the customer-service API stand-in."""
    app[INBOX] = simulator.Inbox()


def _json_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


@auth.login_required(roles=ADMIN)
async def page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    locations = await run_db(request.app, simulator.demo_locations, readonly=True)
    response = aiohttp_jinja2.render_template(
        "simulator.html",
        request,
        {
            "locations": locations,
            "photo_url": PHOTO_PATH,
            "safe_mode": settings.wechat_safe_mode,
            "api_base": settings.wechat_api_base,
            "stand_in": settings.wechat_api_base.endswith(simulator.API_PATH),
        },
    )
    response.headers.update(PAGE_HEADERS)
    return response


@auth.login_required(roles=ADMIN)
async def send(request: web.Request) -> web.Response:
    """POST {openid, text | location{lat,lon,label} | image_url} -> the passive reply."""
    if request.content_type != "application/json":
        # JSON only: a cross-site form cannot post it without the browser asking first.
        return _json_error("需要 JSON", status=415)
    try:
        data = await request.json()
        message = simulator.parse_outgoing(data)
    except json.JSONDecodeError:
        return _json_error("请求格式错误")
    except simulator.InvalidRequest as error:
        return _json_error(str(error))
    result = await simulator.relay(request.app[SETTINGS], message)
    return web.json_response(result.as_json(), status=502 if result.error else 200, dumps=_dumps)


@auth.login_required(roles=ADMIN)
async def inbox(request: web.Request) -> web.Response:
    """GET ?openid=…&after=N -> messages pushed to this resident after id N."""
    try:
        openid = simulator.valid_openid(request.query.get("openid"))
        after = int(request.query.get("after", "0") or 0)
    except (simulator.InvalidRequest, ValueError):
        return _json_error("参数错误")
    box = request.app[INBOX]
    messages = box.since(openid, after)
    return web.json_response(
        {"instance": box.instance, "messages": [m.as_json() for m in messages]}, dumps=_dumps
    )


@auth.login_required(roles=ADMIN)
async def tickets(request: web.Request) -> web.Response:
    """GET ?openid=… -> the resident's tickets, newest first."""
    try:
        openid = simulator.valid_openid(request.query.get("openid"))
    except simulator.InvalidRequest as error:
        return _json_error(str(error))
    timezone = request.app[SETTINGS].timezone
    lines = await run_db(
        request.app,
        lambda session: simulator.resident_tickets(session, openid, timezone),
        readonly=True,
    )
    return web.json_response({"tickets": lines}, dumps=_dumps)


# -- WeChat API stand-in (customer-service messages) ----------------------------------


async def wechat_token(request: web.Request) -> web.Response:
    answer = simulator.token_answer(request.app[INBOX], request.app[SETTINGS], dict(request.query))
    return web.json_response(answer.body)


async def wechat_custom_send(request: web.Request) -> web.Response:
    try:
        data = json.loads(await request.read() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    answer = simulator.custom_send_answer(
        request.app[INBOX], request.query.get("access_token"), data
    )
    return web.json_response(answer.body, dumps=_dumps)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


async def wechat_media_get(request: web.Request) -> web.Response:
    answer = simulator.media_answer(
        request.app[INBOX], request.query.get("access_token"), request.query.get("media_id")
    )
    if isinstance(answer, bytes):
        return web.Response(body=answer, content_type="image/png")
    return web.json_response(answer.body)
