"""WeChat's web authorisation (网页授权, scope snsapi_base): who opened a page.

A page opened from the Official Account's menu sends the resident to WeChat's
authorisation page (`settings.wechat_oauth_authorize_url`) with our callback
(under WEB_BASE_URL) as `redirect_uri` and a random `state`. WeChat comes back
with a one-time `code`, which only our server can exchange, with the app
secret, for the resident's OpenID at WECHAT_API_BASE/sns/oauth2/access_token.

Only an OpenID WeChat itself returned for a code signs anyone in. A forged code
is refused by WeChat (40029); a code already used is refused by WeChat (40163)
and, before we even ask, by `UsedCodes` of this process.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import OrderedDict
from urllib.parse import urlencode

import aiohttp

from bot.settings import Settings

# WeChat's codes are 32 characters of [A-Za-z0-9]; allow some slack, nothing odd.
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A code is valid for 5 minutes; remember used ones a little longer.
CODE_LIFETIME_SECONDS = 600.0
CALLBACK_PATH = "/me/oauth"


class OAuthFailed(Exception):
    """No OpenID for this code (forged, used, expired, or WeChat unreachable)."""


def callback_url(settings: Settings) -> str:
    """Where WeChat sends the resident back (must be on the account's authorised domain)."""
    return settings.public_web_url + CALLBACK_PATH


def authorize_url(settings: Settings, state: str) -> str:
    """The authorisation page to send the resident to (snsapi_base: no consent screen)."""
    query = urlencode(
        {
            "appid": settings.wechat_appid or "",
            "redirect_uri": callback_url(settings),
            "response_type": "code",
            "scope": "snsapi_base",
            "state": state,
        }
    )
    return f"{settings.wechat_oauth_authorize_url}?{query}#wechat_redirect"


class UsedCodes:
    """Codes this process has already exchanged (bounded, forgotten after their lifetime)."""

    def __init__(self, limit: int = 10_000, lifetime: float = CODE_LIFETIME_SECONDS) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._lifetime = lifetime

    def claim(self, code: str, now: float | None = None) -> bool:
        """True the first time `code` is claimed, False ever after (within its lifetime)."""
        now = time.monotonic() if now is None else now
        while self._seen and next(iter(self._seen.values())) < now - self._lifetime:
            self._seen.popitem(last=False)
        if code in self._seen:
            return False
        self._seen[code] = now
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


async def openid_for_code(
    http: aiohttp.ClientSession, settings: Settings, code: str, used: UsedCodes
) -> str:
    """The OpenID WeChat returns for `code`, or OAuthFailed."""
    if not CODE_RE.match(code or ""):
        raise OAuthFailed("malformed code")
    if not (settings.wechat_appid and settings.wechat_app_secret):
        raise OAuthFailed("WECHAT_APPID / WECHAT_APP_SECRET not configured")
    if not used.claim(code):
        raise OAuthFailed("code already used")
    params = {
        "appid": settings.wechat_appid,
        "secret": settings.wechat_app_secret,
        "code": code,
        "grant_type": "authorization_code",
    }
    url = f"{settings.wechat_api_base}/sns/oauth2/access_token"
    try:
        async with http.get(url, params=params) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise OAuthFailed(f"WeChat unreachable: {type(error).__name__}") from error
    if status != 200:
        raise OAuthFailed(f"HTTP {status}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise OAuthFailed("no JSON") from error
    if not isinstance(data, dict):
        raise OAuthFailed("no JSON object")
    openid = data.get("openid")
    if data.get("errcode") or not isinstance(openid, str) or not OPENID_RE.match(openid):
        raise OAuthFailed(f"refused: {data.get('errcode')} {data.get('errmsg')}")
    return openid
