"""Login and logout pages."""

from __future__ import annotations

import math

import aiohttp_jinja2
from aiohttp import web

from bot import accounts
from bot.web import auth
from bot.web.db import run_db

MAX_FIELD = 200


def _safe_next(value: str | None) -> str:
    """Only paths of this site: `next` must not send the worker elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 33 or ord(c) == 127 for c in value):  # browsers drop tabs: "/\t/x"
        return "/"
    return value


def _client_address(request: web.Request) -> str:
    # The direct peer. Behind a reverse proxy this is the proxy; a deployment
    # there should pass the real address (and trust only its own proxy).
    return request.remote or "unknown"


def _login_page(
    request: web.Request, *, phone: str = "", error: str = "", status: int = 200
) -> web.Response:
    response = aiohttp_jinja2.render_template(
        "login.html",
        request,
        {"phone": phone, "error": error, "next": _safe_next(request.query.get("next"))},
        status=status,
    )
    return auth.page_headers(response)


async def login_form(request: web.Request) -> web.StreamResponse:
    if await auth.get_current_worker(request) is not None:
        raise web.HTTPFound(_safe_next(request.query.get("next")))
    return _login_page(request)


@auth.csrf_protect
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    phone = str(form.get("phone", "")).strip()[:MAX_FIELD]
    password = str(form.get("password", ""))[:MAX_FIELD]
    if not phone or not password:
        return _login_page(request, phone=phone, error="请输入手机号和密码。", status=400)

    throttle = request.app[auth.THROTTLE]
    address = _client_address(request)
    wait = throttle.retry_after(phone, address)
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        return _login_page(
            request,
            phone=phone,
            error=f"登录失败次数过多，已暂时锁定。请{minutes}分钟后再试。",
            status=429,
        )

    stamp = throttle.attempt(phone, address)
    found = await run_db(request.app, lambda s: accounts.login(s, phone, password), readonly=True)
    if found is None:
        return _login_page(request, phone=phone, error="手机号或密码不正确。", status=401)
    worker, password_hash = found

    throttle.succeeded(phone, address, stamp)
    target = _safe_next(str(form.get("next", "")) or request.query.get("next"))
    response = web.HTTPSeeOther(target)
    auth.log_in(request, response, worker.id, password_hash)
    raise response


@auth.login_required
async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther(request.app.router["login"].url_for())
    auth.log_out(request, response)
    raise response
