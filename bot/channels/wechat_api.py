"""Async client for WeChat's customer-service message API (客服消息).

Used when the assistant's answer is not ready within the passive-reply deadline.
Callers get a `SendResult`, never an exception: a resident's message must not turn
into a 500 because WeChat's API was down or the 48-hour window had closed.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.coordination import SharedState, SharedStateUnavailable
from bot.settings import Settings, get_settings

logger = logging.getLogger(__name__)

# errcodes WeChat documents for these calls.
ERR_INVALID_TOKEN = 40001
ERR_TOKEN_EXPIRED = 42001
ERR_OUTSIDE_WINDOW = 45015  # the resident has not written within 48 h
ERR_QUOTA = 45047  # the few messages allowed within the window are used up
TOKEN_ERRORS = frozenset({ERR_INVALID_TOKEN, ERR_TOKEN_EXPIRED, 40014})

# A token lives 7200 s; refresh 5 minutes early so a request never carries a token that
# expires in flight.
DEFAULT_REFRESH_MARGIN_SECONDS = 300.0


class SendStatus(str, enum.Enum):
    OK = "ok"
    OUTSIDE_WINDOW = "outside_window"
    QUOTA_EXCEEDED = "quota_exceeded"
    NOT_CONFIGURED = "not_configured"
    FAILED = "failed"


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    errcode: int | None = None
    errmsg: str = ""

    @property
    def ok(self) -> bool:
        return self.status is SendStatus.OK


class WeChatApiError(Exception):
    """The token endpoint or the network failed (internal; turned into SendResult)."""

    def __init__(self, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


# One process refreshes the shared token; the others wait this long for it.
SHARED_REFRESH_WAIT_SECONDS = 10.0
SHARED_REFRESH_LOCK_SECONDS = 15.0


class WeChatApiClient:
    """Access-token cache plus `send_text`. One instance per account and process.

    With `shared` state (bot.coordination's deployment state, `for_deployment`:
    Redis, or the database without it) every process uses one token: WeChat
    invalidates the previous token when a new one is fetched, so processes fetching
    their own would keep revoking each other's. The refresh is done by one process
    under a lock; the others wait for its result.
    """

    def __init__(
        self,
        appid: str | None,
        app_secret: str | None,
        api_base: str = "https://api.weixin.qq.com",
        *,
        timeout_seconds: float = 10.0,
        refresh_margin_seconds: float = DEFAULT_REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedState | None = None,
    ) -> None:
        self.shared = shared
        self.appid = appid
        self.app_secret = app_secret
        self.api_base = api_base.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_deployment(cls, settings: Settings | None = None, **kwargs: Any) -> WeChatApiClient:
        """The configured account's client; its access token is the one every process
        of the deployment shares (Redis, or the database without it)."""
        from bot.coordination import get_deployment_state

        settings = settings or get_settings()
        return cls(
            settings.wechat_appid,
            settings.wechat_app_secret,
            settings.wechat_api_base,
            shared=get_deployment_state(settings),
            **kwargs,
        )

    @property
    def configured(self) -> bool:
        return bool(self.appid and self.app_secret)

    # -- session ---------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession binds to the running loop, and the channel is
        # constructed before Sanic starts its loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        # Locks and sessions belong to one loop; a test may start another.
        self._lock = None

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self._get_session().request(method, url, **kwargs) as response:
                raw = await response.read()
                if response.status != 200:
                    raise WeChatApiError(f"HTTP {response.status} from {method} {url}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise WeChatApiError(f"{method} {url} failed: {type(exc).__name__}") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WeChatApiError(f"{method} {url} returned no JSON") from exc
        if not isinstance(data, dict):
            raise WeChatApiError(f"{method} {url} returned no JSON object")
        return data

    # -- access token ----------------------------------------------------------------

    def _token_valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    async def get_access_token(self, stale_token: str | None = None) -> str:
        """The cached token, fetched when missing, near expiry or equal to `stale_token`.

        `stale_token` is the token WeChat just rejected: only that one is replaced, so
        several callers hitting 40001 at once cause one refresh, not one each.
        """
        if self._token_valid() and self._token != stale_token:
            return self._token  # type: ignore[return-value]
        async with self._get_lock():
            if self._token_valid() and self._token != stale_token:
                return self._token  # type: ignore[return-value]
            if not self.configured:
                raise WeChatApiError("appid / app secret not configured")
            if self.shared is not None:
                try:
                    return await self._shared_token(self.shared, stale_token)
                except SharedStateUnavailable as exc:
                    logger.warning("wechat access token: shared state unavailable (%s)", exc)
            token, lifetime = await self._fetch_token()
            self._keep(token, lifetime)
            return token

    def _keep(self, token: str, lifetime: float) -> None:
        self._token = token
        self._expires_at = self._clock() + max(lifetime, 0)

    async def _fetch_token(self) -> tuple[str, float]:
        """A new token from WeChat and the seconds it may be used (margin deducted)."""
        data = await self._json(
            "GET",
            f"{self.api_base}/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.appid or "",
                "secret": self.app_secret or "",
            },
        )
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatApiError(
                f"token request failed: {data.get('errcode')} {data.get('errmsg')}",
                errcode=_int_or_none(data.get("errcode")),
            )
        expires_in = _int_or_none(data.get("expires_in")) or 7200
        logger.info("wechat access token refreshed (expires in %s s)", expires_in)
        return token, float(max(expires_in - self._margin, 0))

    async def _shared_token(self, shared: SharedState, stale_token: str | None) -> str:
        """The deployment's token: the stored one, or one fetched by one process."""
        key, lock = f"wechat-token:{self.appid}", f"wechat-token-refresh:{self.appid}"
        waited = 0.0
        while True:
            stored = _stored_token(shared.get(key), shared.now())
            if stored is not None and stored[0] != stale_token:
                self._keep(*stored)
                return stored[0]
            holder = shared.acquire(lock, SHARED_REFRESH_LOCK_SECONDS)
            if holder is not None:
                try:
                    stored = _stored_token(shared.get(key), shared.now())
                    if stored is not None and stored[0] != stale_token:
                        token, lifetime = stored
                    else:
                        token, lifetime = await self._fetch_token()
                        record = {"token": token, "expires_at": shared.now() + lifetime}
                        shared.put(key, json.dumps(record), max(lifetime, 1.0))
                finally:
                    shared.release(lock, holder)
                self._keep(token, lifetime)
                return token
            if waited >= SHARED_REFRESH_WAIT_SECONDS:
                raise WeChatApiError("another process is refreshing the token: timed out")
            await asyncio.sleep(0.05)
            waited += 0.05

    async def post_json(self, path: str, body: bytes) -> dict[str, Any]:
        """POST `body` (JSON) to `path` of the API with the access token (refreshed once
        when WeChat rejects it); WeChat's answer. WeChatApiError for token or network
        failures."""
        stale: str | None = None
        data: dict[str, Any] = {}
        for _attempt in range(2):
            token = await self.get_access_token(stale_token=stale)
            data = await self._json(
                "POST",
                f"{self.api_base}{path}",
                params={"access_token": token},
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            if (_int_or_none(data.get("errcode")) or 0) in TOKEN_ERRORS:
                stale = token
                continue
            break
        return data

    # -- customer-service message ----------------------------------------------------

    async def send_text(self, openid: str, content: str) -> SendResult:
        """Send one text through the customer-service API; never raises for WeChat errors."""
        return await self._post_message(
            "/cgi-bin/message/custom/send",
            {"touser": openid, "msgtype": "text", "text": {"content": content}},
        )

    async def send_template(
        self, openid: str, template_id: str, url: str | None, data: dict[str, str]
    ) -> SendResult:
        """Send a template message (service accounts; no 48-hour window): `data` maps
        the template's field names to values. Never raises for WeChat errors."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {name: {"value": value} for name, value in data.items()},
        }
        if url:
            body["url"] = url
        return await self._post_message("/cgi-bin/message/template/send", body)

    async def _post_message(self, path: str, message: dict[str, Any]) -> SendResult:
        if not self.configured:
            return SendResult(SendStatus.NOT_CONFIGURED, errmsg="appid/app secret not set")
        body = json.dumps(
            message,
            ensure_ascii=False,  # WeChat shows \uXXXX escapes literally otherwise
        ).encode("utf-8")
        stale: str | None = None
        for attempt in range(2):
            try:
                token = await self.get_access_token(stale_token=stale)
                data = await self._json(
                    "POST",
                    f"{self.api_base}{path}",
                    params={"access_token": token},
                    data=body,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
            except WeChatApiError as exc:
                logger.warning("wechat send (%s) failed: %s", path, exc)
                return SendResult(SendStatus.FAILED, errcode=exc.errcode, errmsg=str(exc))
            errcode = _int_or_none(data.get("errcode")) or 0
            errmsg = str(data.get("errmsg") or "")
            if errcode == 0:
                return SendResult(SendStatus.OK, errcode=0, errmsg=errmsg)
            if errcode in TOKEN_ERRORS and attempt == 0:
                # The token was revoked or expired early (e.g. another process refreshed
                # it): refresh once and retry.
                stale = token
                continue
            return SendResult(_status_for(errcode), errcode=errcode, errmsg=errmsg)
        return SendResult(SendStatus.FAILED, errmsg="token rejected twice")

    # -- temporary media (a resident's image message) ---------------------------------

    async def download_media(self, media_id: str, max_bytes: int) -> Media:
        """The file behind a MediaId (GET /cgi-bin/media/get), at most `max_bytes`.

        Raises MediaError: `not_configured`, `too_large` (refused as soon as the size
        is known, never read whole) or `failed` (WeChat's error, the network).
        """
        if not self.configured:
            raise MediaError("not_configured", "appid/app secret not set")
        stale: str | None = None
        for attempt in range(2):
            try:
                token = await self.get_access_token(stale_token=stale)
                media = await self._read_media(token, media_id, max_bytes)
            except WeChatApiError as exc:
                if exc.errcode in TOKEN_ERRORS and attempt == 0 and stale is None:
                    stale = self._token
                    continue
                raise MediaError("failed", str(exc), exc.errcode) from exc
            return media
        raise MediaError("failed", "token rejected twice")

    async def _read_media(self, token: str, media_id: str, max_bytes: int) -> Media:
        url = f"{self.api_base}/cgi-bin/media/get"
        try:
            async with self._get_session().get(
                url, params={"access_token": token, "media_id": media_id}
            ) as response:
                if response.status != 200:
                    raise WeChatApiError(f"HTTP {response.status} from GET {url}")
                content_type = (response.content_type or "").lower()
                if content_type in ("application/json", "text/plain"):
                    # WeChat answers errors as JSON (40007: invalid media_id)
                    data = _json_or_empty(await response.content.read(64 * 1024))
                    errcode = _int_or_none(data.get("errcode"))
                    raise WeChatApiError(
                        f"media {media_id}: {errcode} {data.get('errmsg')}", errcode=errcode
                    )
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise MediaError("too_large", f"{declared} bytes declared")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaError("too_large", f"more than {max_bytes} bytes")
                    chunks.append(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise WeChatApiError(f"GET {url} failed: {type(exc).__name__}") from exc
        return Media(b"".join(chunks), content_type)


@dataclass(frozen=True)
class Media:
    data: bytes
    content_type: str  # as WeChat declared it; the bytes themselves are checked later


class MediaError(Exception):
    """A media file could not be had: `reason` is not_configured, too_large or failed."""

    def __init__(self, reason: str, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.errcode = errcode


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _status_for(errcode: int) -> SendStatus:
    if errcode == ERR_OUTSIDE_WINDOW:
        return SendStatus.OUTSIDE_WINDOW
    if errcode == ERR_QUOTA:
        return SendStatus.QUOTA_EXCEEDED
    return SendStatus.FAILED


def _stored_token(raw: str | None, now: float) -> tuple[str, float] | None:
    """(token, seconds left) of the shared record, None when missing or unusable."""
    if not raw:
        return None
    try:
        record = json.loads(raw)
        token, left = str(record["token"]), float(record["expires_at"]) - now
    except (ValueError, KeyError, TypeError):
        return None
    return (token, left) if token and left > 0 else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
