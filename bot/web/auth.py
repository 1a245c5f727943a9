"""Who is using the web app, over HTTP: session cookies, CSRF, page guards.

Accounts, passwords, login session tokens and login throttling are bot.accounts';
here the session token travels in a cookie (HttpOnly, SameSite=Lax), read once
per request. A forged, altered or expired cookie simply counts as logged out.

CSRF: a random value in a cookie of its own and, in every form, an HMAC of it
(a signed double-submit token). A third-party site can neither read the cookie
nor compute the token. The value is renewed at login and logout, so a token is
bound to one login session. `login_required` checks it on every unsafe request;
forms that need no login use `csrf_protect`.

Pages use `login_required`; templates get `current_worker()`, `csrf_token()`
and `csrf_field()` as globals (see `setup_auth`).
"""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from bot import accounts
from bot.accounts import CurrentWorker, LoginThrottle
from bot.store.models import utcnow
from bot.web.db import run_db
from bot.web.keys import SETTINGS, SHARED_STATE

SESSION_COOKIE = "nb_session"
CSRF_COOKIE = "nb_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

CSRF_MESSAGE = (
    "安全校验失败：页面已过期，或请求不是从本系统的页面提交的。请返回上一页，刷新后重新提交。"
)

# -- session cookies ---------------------------------------------------------


_WORKER_KEY = "auth.worker"  # request key: CurrentWorker | None once looked up
_NEW_CSRF_KEY = "auth.new_csrf"  # request key: a CSRF cookie value to send
_DROP_SESSION_KEY = "auth.drop_session"  # request key: the session cookie is bad


async def get_current_worker(request: web.Request) -> CurrentWorker | None:
    """The logged-in worker of this request (looked up once per request)."""
    if _WORKER_KEY in request:
        return request[_WORKER_KEY]
    value = request.cookies.get(SESSION_COOKIE)
    worker = None
    if value:
        secret = request.app[SETTINGS].web_secret_key
        worker = await run_db(
            request.app, lambda s: accounts.worker_from_token(s, secret, value), readonly=True
        )
        if worker is None:
            request[_DROP_SESSION_KEY] = True
    request[_WORKER_KEY] = worker
    return worker


def _cookie_options(request: web.Request) -> dict:
    secure = request.app[SETTINGS].web_cookie_secure or request.secure
    # Lax, not Strict: a worker following a ticket link from a WeCom group
    # message (another site) must arrive logged in. Lax still keeps the
    # cookies off cross-site POSTs, and every POST carries a CSRF token anyway.
    return {"httponly": True, "samesite": "Lax", "secure": secure, "path": "/"}


def log_in(
    request: web.Request, response: web.StreamResponse, worker_id: int, password_hash: str
) -> None:
    """Give `response` a fresh session cookie (and a fresh CSRF value)."""
    secret = request.app[SETTINGS].web_secret_key
    expires_at = utcnow() + accounts.SESSION_LIFETIME
    response.set_cookie(
        SESSION_COOKIE,
        accounts.session_token(secret, worker_id, password_hash, expires_at),
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
        **_cookie_options(request),
    )
    _renew_csrf(request)


def log_out(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
    _renew_csrf(request)


# -- CSRF --------------------------------------------------------------------


def _csrf_for(secret: str, cookie_value: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"csrf|{cookie_value}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def _renew_csrf(request: web.Request) -> str:
    value = secrets.token_urlsafe(32)
    request[_NEW_CSRF_KEY] = value
    return value


def csrf_token(request: web.Request) -> str:
    """The token to put in this request's forms (sets the CSRF cookie if needed)."""
    value = request.get(_NEW_CSRF_KEY) or request.cookies.get(CSRF_COOKIE)
    if not value:
        value = _renew_csrf(request)
    return _csrf_for(request.app[SETTINGS].web_secret_key, value)


def csrf_matches(request: web.Request, sent: str | None) -> bool:
    """True when `sent` is the token matching the request's CSRF cookie."""
    cookie_value = request.cookies.get(CSRF_COOKIE)
    if not cookie_value or not sent:
        return False
    expected = _csrf_for(request.app[SETTINGS].web_secret_key, cookie_value)
    return hmac.compare_digest(expected.encode("ascii"), sent.encode("utf-8", "replace"))


async def check_csrf(request: web.Request) -> bool:
    """True when the request carries the token that matches its CSRF cookie."""
    cookie_value = request.cookies.get(CSRF_COOKIE)
    if not cookie_value:
        return False
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()  # cached: the handler reads it again for free
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if not sent:
        return False
    expected = _csrf_for(request.app[SETTINGS].web_secret_key, cookie_value)
    return hmac.compare_digest(expected.encode("ascii"), sent.encode("utf-8", "replace"))


# Staff pages: no inline script can run (a missed escape stays harmless), no
# framing (clickjacking), and nothing of a ticket stays in a shared phone's cache.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: "
        "http:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def page_headers(response: web.StreamResponse) -> web.StreamResponse:
    """Add PAGE_HEADERS (those not set already) to a staff page's response."""
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render_error(request: web.Request, status: int, message: str, title: str = "") -> web.Response:
    """A page with a message (error.html), for 403/404/409 and the like."""
    titles = {403: "无法完成操作", 404: "没有找到", 409: "操作未完成", 429: "请稍后再试"}
    response = aiohttp_jinja2.render_template(
        "error.html",
        request,
        {"status": status, "message": message, "title": title or titles.get(status, "出错了")},
        status=status,
    )
    return page_headers(response)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_protect(handler: Handler) -> Handler:
    """For forms that need no login (the login form itself): unsafe requests
    without a valid CSRF token get 403 and the handler is not called."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if request.method in _UNSAFE and not await check_csrf(request):
            return render_error(request, 403, CSRF_MESSAGE)
        return await handler(request)

    return wrapper


def login_required(
    handler: Handler | None = None, *, roles: Iterable[str] | None = None
) -> Handler | Callable[[Handler], Handler]:
    """Pages for logged-in workers (optionally only some roles).

    Logged out: pages redirect to /login (and back afterwards). Unsafe requests
    must carry a valid CSRF token (403 otherwise). The worker is in
    `request["worker"]` (a CurrentWorker).
    """
    allowed = frozenset(roles) if roles is not None else None

    def decorate(inner: Handler) -> Handler:
        @functools.wraps(inner)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            worker = await get_current_worker(request)
            if worker is None:
                target = request.rel_url.path_qs if request.method == "GET" else "/"
                raise web.HTTPFound(
                    request.app.router["login"].url_for().with_query({"next": target})
                )
            if request.method in _UNSAFE and not await check_csrf(request):
                return render_error(request, 403, CSRF_MESSAGE)
            if allowed is not None and worker.role not in allowed:
                return render_error(request, 403, "您的账号没有访问此页面的权限。", "无权访问")
            request["worker"] = worker
            return await inner(request)

        return wrapper

    return decorate(handler) if handler is not None else decorate


# Failed logins, counted in the shared state (bot.accounts.LoginThrottle).
THROTTLE = web.AppKey("auth.throttle", LoginThrottle)


# -- wiring --------------------------------------------------------------------


async def _first_admin_ctx(app: web.Application) -> AsyncIterator[None]:
    password = app[SETTINGS].admin_password
    generated = await run_db(app, lambda s: accounts.ensure_first_admin(s, password))
    phone = accounts.FIRST_ADMIN_PHONE
    if generated:
        print(f"首次启动：管理员账号 {phone} 密码 {generated}", flush=True)
    elif generated == "":
        print(f"首次启动：已创建管理员账号 {phone}（密码即 ADMIN_PASSWORD）", flush=True)
    yield


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Templates get the request; cookies decided during the request are sent."""
    context = request.setdefault(aiohttp_jinja2.REQUEST_CONTEXT_KEY, {})
    context.setdefault("request", request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _send_cookies(request, exc)
        raise
    _send_cookies(request, response)
    return response


def _send_cookies(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # streamed responses have sent their headers already
        return
    new_csrf = request.get(_NEW_CSRF_KEY)
    if new_csrf:
        # No max-age: ends with the browser session, renewed at login/logout.
        response.set_cookie(CSRF_COOKIE, new_csrf, **_cookie_options(request))
    if request.get(_DROP_SESSION_KEY) and SESSION_COOKIE not in response.cookies:
        response.del_cookie(SESSION_COOKIE, path="/")


@jinja2.pass_context
def _current_worker_global(context: jinja2.runtime.Context) -> CurrentWorker | None:
    request = context.get("request")
    return request.get(_WORKER_KEY) if request is not None else None


@jinja2.pass_context
def _csrf_token_global(context: jinja2.runtime.Context) -> str:
    request = context.get("request")
    return csrf_token(request) if request is not None else ""


@jinja2.pass_context
def _csrf_field_global(context: jinja2.runtime.Context) -> Markup:
    token = _csrf_token_global(context)
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')


def setup_auth(app: web.Application) -> None:
    """Register sessions, CSRF and the first admin on `app` (call after the
    database resource is on app.cleanup_ctx)."""
    app[THROTTLE] = LoginThrottle(state=app[SHARED_STATE])
    app.middlewares.append(_auth_middleware)
    app.cleanup_ctx.append(_first_admin_ctx)
    env = aiohttp_jinja2.get_env(app)
    env.globals.update(
        current_worker=_current_worker_global,
        csrf_token=_csrf_token_global,
        csrf_field=_csrf_field_global,
    )
