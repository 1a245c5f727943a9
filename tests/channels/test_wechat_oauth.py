"""bot.channels.wechat_oauth against the fake WeChat API."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.channels import wechat_oauth
from bot.settings import load_settings
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi


def _settings(api: str, **changes: object):
    return replace(
        load_settings(),
        wechat_api_base=api,
        wechat_appid=APPID,
        wechat_app_secret=APP_SECRET,
        web_base_url="https://nb.example.org/",
        **changes,
    )


def test_authorize_url_uses_web_base_url() -> None:
    url = wechat_oauth.authorize_url(_settings("http://127.0.0.1:9"), "STATE1")
    parts = urlsplit(url)
    assert url.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?")
    query = parse_qs(parts.query)
    assert query["redirect_uri"] == ["https://nb.example.org/me/oauth"]
    assert query["state"] == ["STATE1"] and query["scope"] == ["snsapi_base"]
    assert parts.fragment == "wechat_redirect"


async def test_code_is_exchanged_once(fake_wechat_api: FakeWeChatApi) -> None:
    settings = _settings(fake_wechat_api.url)
    used = wechat_oauth.UsedCodes()
    code = fake_wechat_api.issue_oauth_code("oResident9")
    async with aiohttp.ClientSession() as http:
        assert await wechat_oauth.openid_for_code(http, settings, code, used) == "oResident9"
        with pytest.raises(wechat_oauth.OAuthFailed):
            await wechat_oauth.openid_for_code(http, settings, code, used)
        # a fresh process (no memory of the code) is refused by WeChat
        with pytest.raises(wechat_oauth.OAuthFailed):
            await wechat_oauth.openid_for_code(http, settings, code, wechat_oauth.UsedCodes())
        for forged in ("FORGED000001", "", "a b", "x" * 200):
            with pytest.raises(wechat_oauth.OAuthFailed):
                await wechat_oauth.openid_for_code(http, settings, forged, used)
        unconfigured = replace(settings, wechat_app_secret=None)
        with pytest.raises(wechat_oauth.OAuthFailed):
            await wechat_oauth.openid_for_code(
                http, unconfigured, fake_wechat_api.issue_oauth_code("o1"), used
            )
        unreachable = replace(settings, wechat_api_base="http://127.0.0.1:9")
        with pytest.raises(wechat_oauth.OAuthFailed):
            await wechat_oauth.openid_for_code(
                http, unreachable, fake_wechat_api.issue_oauth_code("o2"), used
            )


def test_used_codes_forget_after_their_lifetime() -> None:
    used = wechat_oauth.UsedCodes(limit=2, lifetime=10)
    assert used.claim("A", now=0) and not used.claim("A", now=5)
    assert used.claim("A", now=20)  # expired long ago at WeChat too
    assert used.claim("B", now=21) and used.claim("C", now=22)
