"""Who is using the web app: passwords, session cookies, CSRF, login throttling.

Passwords are hashed with scrypt (random salt; algorithm, parameters and salt
are kept in the hash string so they can be raised later without breaking old
hashes) and compared in constant time.

Sessions are stateless signed cookies: ``<worker id>.<expiry>.<signature>``,
the signature an HMAC-SHA256 (key: settings.web_secret_key) over the worker
id, the expiry and a token derived from the worker's password hash. Changing a
password therefore ends every session of that worker; deactivating a worker
ends them too (checked on every request). A forged, altered or expired cookie
simply counts as logged out.

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
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.models import Community, Grid, Worker, utcnow
from bot.web.db import run_db
from bot.web.keys import SETTINGS

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CurrentWorker",
    "LoginThrottle",
    "ROLE_LABELS",
    "SESSION_COOKIE",
    "SESSION_LIFETIME",
    "THROTTLE",
    "add_admin",
    "authenticate",
    "check_csrf",
    "csrf_protect",
    "csrf_token",
    "ensure_first_admin",
    "get_current_worker",
    "hash_password",
    "list_workers",
    "log_in",
    "log_out",
    "login_required",
    "make_session_cookie",
    "page_headers",
    "render_error",
    "worker_from_cookie",
    "set_password",
    "setup_auth",
    "verify_password",
]

SESSION_COOKIE = "nb_session"
CSRF_COOKIE = "nb_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 8

FIRST_ADMIN_NAME = "管理员"
FIRST_ADMIN_PHONE = "admin"

ROLE_LABELS = {"grid_worker": "网格员", "community_staff": "社区工作人员", "admin": "管理员"}

CSRF_MESSAGE = (
    "安全校验失败：页面已过期，或请求不是从本系统的页面提交的。请返回上一页，刷新后重新提交。"
)

# -- passwords ---------------------------------------------------------------

# scrypt cost: 16 MiB of memory and some 50 ms per hash; raise N when hardware
# gets faster (old hashes keep working, their parameters are in the string).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$n=16384,r=8,p=1$<salt>$<hash>`` for `password`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=_SCRYPT_MAXMEM,
    )
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches the hash string `stored` (constant-time compare)."""
    if not stored:
        return False
    try:
        algorithm, params, salt_text, digest_text = stored.split("$")
        if algorithm != "scrypt":
            return False
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        expected = _unb64(digest_text)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt_text),
            n=n,
            r=r,
            p=p,
            dklen=len(expected),
            maxmem=_SCRYPT_MAXMEM,
        )
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    # Checked when the phone is unknown, so that "no such worker" takes as
    # long as "wrong password" and the response time does not reveal phones.
    return hash_password(secrets.token_urlsafe(16))


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"密码至少需要{MIN_PASSWORD_LENGTH}个字符")


# -- the logged-in worker ----------------------------------------------------


@dataclass(frozen=True)
class CurrentWorker:
    """The logged-in worker, detached from any database session."""

    id: int
    name: str
    phone: str | None
    role: str
    community_id: int | None = None
    community_name: str | None = None

    @property
    def actor(self) -> str:
        """How ticket events record this worker."""
        return f"worker:{self.id}:{self.name}"

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def of(cls, worker: Worker, community_name: str | None = None) -> CurrentWorker:
        return cls(
            id=worker.id,
            name=worker.name,
            phone=worker.phone,
            role=worker.role,
            community_id=worker.community_id,
            community_name=community_name,
        )


def _community_name(session: Session, community_id: int | None) -> str | None:
    if community_id is None:
        return None
    return session.execute(
        select(Community.name).where(Community.id == community_id)
    ).scalar_one_or_none()


def authenticate(session: Session, phone: str, password: str) -> CurrentWorker | None:
    """The active worker with this phone and password, or None."""
    worker = session.execute(
        select(Worker).where(Worker.phone == phone.strip())
    ).scalar_one_or_none()
    if worker is None or not worker.active or not worker.password_hash:
        verify_password(password, _dummy_hash())
        return None
    if not verify_password(password, worker.password_hash):
        return None
    return CurrentWorker.of(worker, _community_name(session, worker.community_id))


# -- session cookies ---------------------------------------------------------


def _password_token(password_hash: str | None) -> str:
    """Changes whenever the password changes; ends old sessions."""
    return hashlib.sha256((password_hash or "").encode("utf-8")).hexdigest()[:32]


def _session_signature(secret: str, worker_id: int, expires: int, password_hash: str) -> str:
    message = f"session|{worker_id}|{expires}|{_password_token(password_hash)}"
    return _b64(hmac.new(secret.encode("utf-8"), message.encode("utf-8"), "sha256").digest())


def make_session_cookie(
    secret: str, worker_id: int, password_hash: str, expires_at: datetime
) -> str:
    """The session cookie value for a worker, valid until `expires_at`."""
    expires = int(expires_at.timestamp())
    return f"{worker_id}.{expires}.{_session_signature(secret, worker_id, expires, password_hash)}"


def _parse_session_cookie(value: str) -> tuple[int, int, str] | None:
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


def worker_from_cookie(
    session: Session, secret: str, value: str | None, now: datetime | None = None
) -> CurrentWorker | None:
    """The worker a session cookie stands for, or None if forged, expired or stale."""
    parsed = _parse_session_cookie(value or "")
    if parsed is None:
        return None
    worker_id, expires, signature = parsed
    if expires <= (now or utcnow()).timestamp():
        return None
    worker = session.get(Worker, worker_id)
    if worker is None or not worker.active or not worker.password_hash:
        return None
    expected = _session_signature(secret, worker_id, expires, worker.password_hash)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        return None
    return CurrentWorker.of(worker, _community_name(session, worker.community_id))


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
            request.app, lambda s: worker_from_cookie(s, secret, value), readonly=True
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
    expires_at = utcnow() + SESSION_LIFETIME
    response.set_cookie(
        SESSION_COOKIE,
        make_session_cookie(secret, worker_id, password_hash, expires_at),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        **_cookie_options(request),
    )
    _renew_csrf(request)


def log_out(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
    _renew_csrf(request)


# -- CSRF --------------------------------------------------------------------


def _csrf_for(secret: str, cookie_value: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"csrf|{cookie_value}".encode(), "sha256")
    return _b64(mac.digest())


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


# -- login throttling --------------------------------------------------------


class LoginThrottle:
    """Failed logins per phone and per client address within a sliding window.

    Kept in this process's memory: enough for one web process. Several web
    processes behind a load balancer would each count separately and need a
    shared store (a database table or Redis) instead.
    """

    def __init__(
        self,
        per_phone: int = 5,
        per_address: int = 20,
        window: float = 15 * 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10000,
    ) -> None:
        self.limits = {"phone": per_phone, "address": per_address}
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, phone: str, address: str) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        wait = 0.0
        for kind, value in (("phone", phone), ("address", address)):
            failures = self._recent((kind, value))
            if len(failures) >= self.limits[kind]:
                wait = max(wait, failures[-self.limits[kind]] + self.window - self.clock())
        return max(wait, 0.0)

    def attempt(self, phone: str, address: str) -> float:
        """Count an attempt as failed before checking the password, so that
        many simultaneous guesses cannot all slip in before the first one
        fails; `succeeded` takes it back. Returns the attempt's stamp."""
        if len(self._failures) >= self.max_keys:
            self._prune()
        now = self.clock()
        for key in (("phone", phone), ("address", address)):
            self._failures.setdefault(key, deque(maxlen=100)).append(now)
        return now

    def succeeded(self, phone: str, address: str, stamp: float) -> None:
        # The phone's count starts over; the address only gets this attempt
        # back, so a correct password of one account does not reset the count
        # of an address that is guessing at others.
        self._failures.pop(("phone", phone), None)
        failures = self._failures.get(("address", address))
        if failures is not None:
            try:
                failures.remove(stamp)
            except ValueError:
                pass

    def _prune(self) -> None:
        for key in list(self._failures):
            self._recent(key)
        if len(self._failures) >= self.max_keys:  # under attack: forget the oldest
            for key in list(self._failures)[: self.max_keys // 2]:
                del self._failures[key]


THROTTLE = web.AppKey("auth.throttle", LoginThrottle)


# -- workers: first admin, passwords, admins ---------------------------------


def ensure_first_admin(session: Session, password: str | None) -> str | None:
    """Create the admin ``admin`` when there is no active admin at all.

    Uses `password` (ADMIN_PASSWORD) or generates one. Returns the generated
    password (to be shown once), "" when `password` was used, None when an
    active admin already existed.
    """
    exists = session.execute(
        select(Worker.id).where(Worker.role == "admin", Worker.active.is_(True)).limit(1)
    ).first()
    if exists is not None:
        return None
    chosen = password or secrets.token_urlsafe(12)
    try:
        with session.begin_nested():
            worker = session.execute(
                select(Worker).where(Worker.phone == FIRST_ADMIN_PHONE)
            ).scalar_one_or_none()
            if worker is None:
                worker = Worker(name=FIRST_ADMIN_NAME, phone=FIRST_ADMIN_PHONE)
                session.add(worker)
            # A deactivated "admin" account comes back as the admin.
            worker.role = "admin"
            worker.active = True
            worker.community_id = None
            worker.password_hash = hash_password(chosen)
            session.flush()
    except IntegrityError:
        return None  # another web process created it at the same moment
    return "" if password else chosen


def set_password(session: Session, phone: str, password: str) -> Worker:
    """Set a worker's password (ends the worker's sessions)."""
    check_new_password(password)
    worker = session.execute(select(Worker).where(Worker.phone == phone)).scalar_one_or_none()
    if worker is None:
        raise LookupError(f"没有手机号为{phone}的工作人员")
    worker.password_hash = hash_password(password)
    worker.updated_at = utcnow()
    session.flush()
    return worker


def add_admin(session: Session, name: str, phone: str, password: str) -> Worker:
    check_new_password(password)
    if not name.strip() or not phone.strip():
        raise ValueError("姓名和手机号不能为空")
    existing = session.execute(select(Worker).where(Worker.phone == phone)).scalar_one_or_none()
    if existing is not None:
        raise ValueError(f"手机号{phone}已属于{existing.name}（{ROLE_LABELS.get(existing.role)}）")
    worker = Worker(
        name=name.strip(),
        phone=phone.strip(),
        role="admin",
        active=True,
        password_hash=hash_password(password),
    )
    session.add(worker)
    session.flush()
    return worker


@dataclass(frozen=True)
class WorkerRow:
    id: int
    name: str
    phone: str | None
    role: str
    community: str | None
    grids: tuple[str, ...]
    active: bool
    has_password: bool


def list_workers(session: Session) -> list[WorkerRow]:
    grids: dict[int, list[str]] = {}
    for worker_id, code in session.execute(
        select(Grid.worker_id, Grid.code).where(Grid.worker_id.isnot(None)).order_by(Grid.code)
    ):
        grids.setdefault(worker_id, []).append(code)
    rows = session.execute(
        select(Worker, Community.name)
        .outerjoin(Community, Worker.community_id == Community.id)
        .order_by(Worker.id)
    ).all()
    return [
        WorkerRow(
            id=w.id,
            name=w.name,
            phone=w.phone,
            role=w.role,
            community=community,
            grids=tuple(grids.get(w.id, ())),
            active=bool(w.active),
            has_password=bool(w.password_hash),
        )
        for w, community in rows
    ]


# -- wiring --------------------------------------------------------------------


async def _first_admin_ctx(app: web.Application) -> AsyncIterator[None]:
    password = app[SETTINGS].admin_password
    generated = await run_db(app, lambda s: ensure_first_admin(s, password))
    if generated:
        print(f"首次启动：管理员账号 {FIRST_ADMIN_PHONE} 密码 {generated}", flush=True)
    elif generated == "":
        print(
            f"首次启动：已创建管理员账号 {FIRST_ADMIN_PHONE}（密码即 ADMIN_PASSWORD）", flush=True
        )
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
    app[THROTTLE] = LoginThrottle()
    app.middlewares.append(_auth_middleware)
    app.cleanup_ctx.append(_first_admin_ctx)
    env = aiohttp_jinja2.get_env(app)
    env.globals.update(
        current_worker=_current_worker_global,
        csrf_token=_csrf_token_global,
        csrf_field=_csrf_field_global,
    )
