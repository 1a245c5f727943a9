"""Residents on the web (the "my reports" page): signed in through WeChat's web
authorisation, remembered by a signed cookie.

- `start_sign_in`: a random `state` goes into a short-lived cookie and into the
  authorisation URL; WeChat sends it back with the code. The callback accepts
  the code only when the two match (a link planted by someone else carries a
  state this browser never had: CSRF on the sign-in itself).
- `finish_sign_in`: the code becomes an OpenID (bot.channels.wechat_oauth) and
  the resident gets a session cookie: the OpenID, an expiry and an HMAC with
  WEB_SECRET_KEY (HttpOnly, SameSite=Lax, path /me). A forged or altered cookie
  counts as signed out.
- Forms on the page carry the CSRF token of bot.web.auth (`check_csrf`).
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from bot.channels import wechat_oauth
from bot.web import auth
from bot.web.keys import HTTP, SETTINGS

RESIDENT_COOKIE = "nb_resident"
STATE_COOKIE = "nb_oauth_state"
COOKIE_PATH = "/me"
SESSION_SECONDS = 7 * 24 * 3600
STATE_SECONDS = 600

USED_CODES = web.AppKey("resident_auth.used_codes", wechat_oauth.UsedCodes)
_RESIDENT_KEY = "resident_auth.openid"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup(app: web.Application) -> None:
    app[USED_CODES] = wechat_oauth.UsedCodes()


def _mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), "sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def session_value(secret: str, openid: str, expires_at: int) -> str:
    return f"{openid}.{expires_at}.{_mac(secret, f'resident|{openid}|{expires_at}')}"


def openid_from_cookie(secret: str, value: str | None, now: float | None = None) -> str | None:
    """The OpenID of a valid, unexpired session cookie; None otherwise."""
    if not value or value.count(".") != 2:
        return None
    openid, expires_raw, mac = value.split(".")
    if not wechat_oauth.OPENID_RE.match(openid) or not expires_raw.isdigit():
        return None
    expected = _mac(secret, f"resident|{openid}|{expires_raw}")
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("utf-8", "replace")):
        return None
    if int(expires_raw) < (time.time() if now is None else now):
        return None
    return openid


def _cookie_options(request: web.Request, max_age: int) -> dict:
    secure = request.app[SETTINGS].web_cookie_secure or request.secure
    return {
        "httponly": True,
        "samesite": "Lax",
        "secure": secure,
        "path": COOKIE_PATH,
        "max_age": max_age,
    }


def current_resident(request: web.Request) -> str | None:
    if _RESIDENT_KEY not in request:
        request[_RESIDENT_KEY] = openid_from_cookie(
            request.app[SETTINGS].web_secret_key, request.cookies.get(RESIDENT_COOKIE)
        )
    return request[_RESIDENT_KEY]


def start_sign_in(request: web.Request) -> web.HTTPFound:
    """A redirect to WeChat's authorisation page, with a fresh state cookie."""
    state = secrets.token_urlsafe(24)
    redirect = web.HTTPFound(wechat_oauth.authorize_url(request.app[SETTINGS], state))
    redirect.set_cookie(STATE_COOKIE, state, **_cookie_options(request, STATE_SECONDS))
    return redirect


async def finish_sign_in(request: web.Request) -> web.StreamResponse:
    """The OAuth callback: check state, exchange the code, set the session cookie."""
    state = request.query.get("state", "")
    expected = request.cookies.get(STATE_COOKIE, "")
    if (
        not state
        or not expected
        or not hmac.compare_digest(expected.encode("utf-8"), state.encode("utf-8", "replace"))
    ):
        return _refused(request)
    try:
        openid = await wechat_oauth.openid_for_code(
            request.app[HTTP],
            request.app[SETTINGS],
            request.query.get("code", ""),
            request.app[USED_CODES],
        )
    except wechat_oauth.OAuthFailed:
        return _refused(request)
    response = web.HTTPSeeOther(COOKIE_PATH)
    secret = request.app[SETTINGS].web_secret_key
    expires_at = int(time.time()) + SESSION_SECONDS
    response.set_cookie(
        RESIDENT_COOKIE,
        session_value(secret, openid, expires_at),
        **_cookie_options(request, SESSION_SECONDS),
    )
    response.del_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


SIGN_IN_REFUSED = "登录没有成功：链接已失效或已使用过。请从公众号菜单“我的工单”重新打开。"


def render_error(request: web.Request, status: int, message: str, title: str) -> web.Response:
    """A residents' page with a message (no staff navigation, no link to staff pages)."""
    response = aiohttp_jinja2.render_template(
        "resident/error.html", request, {"message": message, "title": title}, status=status
    )
    return auth.page_headers(response)


def _refused(request: web.Request) -> web.Response:
    response = render_error(request, 403, SIGN_IN_REFUSED, "登录失败")
    response.del_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


def resident_required(handler: Handler) -> Handler:
    """Pages of a signed-in resident: others are sent to sign in (GET) or refused;
    unsafe requests need the CSRF token. The OpenID is in request["openid"]."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        openid = current_resident(request)
        if openid is None:
            if request.method == "GET":
                raise start_sign_in(request)
            return render_error(request, 403, SIGN_IN_REFUSED, "请先登录")
        if request.method != "GET" and not await auth.check_csrf(request):
            return render_error(request, 403, auth.CSRF_MESSAGE, "无法完成操作")
        request["openid"] = openid
        return await handler(request)

    return wrapper
