"""Customer-service API client against a fake WeChat API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from bot.channels.wechat_api import SendResult, SendStatus, WeChatApiClient
from bot.settings import load_settings
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi


def client(fake: FakeWeChatApi, **kwargs: object) -> WeChatApiClient:
    return WeChatApiClient(APPID, APP_SECRET, fake.url, **kwargs)  # type: ignore[arg-type]


async def test_send_fetches_token_once_and_posts_utf8_json(fake_wechat_api: FakeWeChatApi) -> None:
    api = client(fake_wechat_api)
    try:
        first = await api.send_text("oUser", "您反映的暖气问题已派给网格员")
        second = await api.send_text("oUser", "第二条")
    finally:
        await api.close()
    assert first == SendResult(SendStatus.OK, errcode=0, errmsg="ok") and second.ok
    assert len(fake_wechat_api.token_requests) == 1
    assert fake_wechat_api.token_requests[0] == {
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": APP_SECRET,
    }
    assert fake_wechat_api.send_tokens == ["ACCESS_TOKEN_1", "ACCESS_TOKEN_1"]
    body = fake_wechat_api.sends[0]
    assert body["json"] == {
        "touser": "oUser",
        "msgtype": "text",
        "text": {"content": "您反映的暖气问题已派给网格员"},
    }
    # ensure_ascii=False: the Chinese travels as UTF-8, not \\u escapes.
    assert "暖气".encode() in body["raw"] and b"\\u" not in body["raw"]


async def test_concurrent_sends_share_one_token_fetch(fake_wechat_api: FakeWeChatApi) -> None:
    api = client(fake_wechat_api)
    try:
        results = await asyncio.gather(*(api.send_text(f"o{i}", "hi") for i in range(8)))
    finally:
        await api.close()
    assert all(r.ok for r in results)
    assert len(fake_wechat_api.token_requests) == 1


async def test_token_refreshed_before_expiry(fake_wechat_api: FakeWeChatApi) -> None:
    now = [1000.0]
    api = client(fake_wechat_api, clock=lambda: now[0])
    try:
        assert await api.get_access_token() == "ACCESS_TOKEN_1"
        now[0] += 7200 - 300 - 1  # just before the early-refresh point
        assert await api.get_access_token() == "ACCESS_TOKEN_1"
        now[0] += 2
        assert await api.get_access_token() == "ACCESS_TOKEN_2"
    finally:
        await api.close()
    assert len(fake_wechat_api.token_requests) == 2


async def test_invalid_token_refreshes_once_and_retries(fake_wechat_api: FakeWeChatApi) -> None:
    api = client(fake_wechat_api)
    try:
        assert (await api.send_text("oUser", "one")).ok
        fake_wechat_api.current_token = "REVOKED_ELSEWHERE"  # another process refreshed it
        result = await api.send_text("oUser", "two")
    finally:
        await api.close()
    assert result.ok
    assert len(fake_wechat_api.token_requests) == 2
    assert [s["json"]["text"]["content"] for s in fake_wechat_api.sends] == ["one", "two"]


async def test_token_expired_errcode_refreshes(fake_wechat_api: FakeWeChatApi) -> None:
    api = client(fake_wechat_api)
    try:
        await api.get_access_token()
        fake_wechat_api.send_errcodes = [42001]
        result = await api.send_text("oUser", "x")
    finally:
        await api.close()
    assert result.ok and len(fake_wechat_api.token_requests) == 2


async def test_token_rejected_twice_is_a_failure_not_a_loop(fake_wechat_api: FakeWeChatApi) -> None:
    api = client(fake_wechat_api)
    try:
        await api.get_access_token()
        fake_wechat_api.send_errcodes = [40001, 40001]
        result = await api.send_text("oUser", "x")
    finally:
        await api.close()
    assert result.status is SendStatus.FAILED and result.errcode == 40001
    assert len(fake_wechat_api.token_requests) == 2


async def test_window_and_quota_errors_are_typed_results(fake_wechat_api: FakeWeChatApi) -> None:
    api = client(fake_wechat_api)
    try:
        fake_wechat_api.send_errcodes = [45015, 45047, 45009]
        outside = await api.send_text("oUser", "x")
        quota = await api.send_text("oUser", "x")
        other = await api.send_text("oUser", "x")
    finally:
        await api.close()
    assert outside.status is SendStatus.OUTSIDE_WINDOW and outside.errcode == 45015
    assert quota.status is SendStatus.QUOTA_EXCEEDED and quota.errcode == 45047
    assert other.status is SendStatus.FAILED and other.errcode == 45009
    assert not outside.ok


async def test_bad_secret_is_a_failure(fake_wechat_api: FakeWeChatApi) -> None:
    api = WeChatApiClient(APPID, "wrong", fake_wechat_api.url)
    try:
        result = await api.send_text("oUser", "x")
    finally:
        await api.close()
    assert result.status is SendStatus.FAILED and result.errcode == 40125
    assert fake_wechat_api.sends == []


async def test_unreachable_api_is_a_failure() -> None:
    api = WeChatApiClient(APPID, APP_SECRET, "http://127.0.0.1:9", timeout_seconds=2)
    try:
        result = await api.send_text("oUser", "x")
    finally:
        await api.close()
    assert result.status is SendStatus.FAILED


async def test_not_configured() -> None:
    api = WeChatApiClient(None, None, "http://127.0.0.1:9")
    result = await api.send_text("oUser", "x")
    assert result.status is SendStatus.NOT_CONFIGURED


async def test_non_json_answer_is_a_failure() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def not_json(_request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error page</html>")

    app = web.Application()
    app.router.add_get("/cgi-bin/token", not_json)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    api = WeChatApiClient(APPID, APP_SECRET, str(server.make_url("")))
    try:
        result = await api.send_text("oUser", "x")
    finally:
        await api.close()
        await server.close()
    assert result.status is SendStatus.FAILED
    assert json.dumps(result.errmsg)  # a readable reason, no exception


async def test_processes_share_one_token_fetched_once(
    fake_wechat_api: FakeWeChatApi, shared_state
) -> None:
    processes = [client(fake_wechat_api, shared=shared_state) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(api.send_text(f"o{i}", "hi") for i, api in enumerate(processes * 3))
        )
        assert all(r.ok for r in results)
        assert len(fake_wechat_api.token_requests) == 1
        # WeChat rejects it (revoked): one process refreshes, the others take its token
        fake_wechat_api.current_token = "REVOKED"
        again = await asyncio.gather(*(api.send_text("oX", "again") for api in processes))
    finally:
        for api in processes:
            await api.close()
    assert all(r.ok for r in again)
    assert len(fake_wechat_api.token_requests) == 2


# -- temporary media (a resident's image message) ------------------------------------


async def test_media_is_downloaded_with_the_token(fake_wechat_api: FakeWeChatApi) -> None:
    from tests.fakes import PNG_1PX

    fake_wechat_api.media["MEDIA_1"] = ("image/png", PNG_1PX)
    api = client(fake_wechat_api)
    try:
        media = await api.download_media("MEDIA_1", max_bytes=10_000)
    finally:
        await api.close()
    assert media.data == PNG_1PX and media.content_type == "image/png"
    assert fake_wechat_api.media_requests == ["MEDIA_1"]


async def test_media_errors_and_oversize_raise_media_error(fake_wechat_api: FakeWeChatApi) -> None:
    from bot.channels.wechat_api import MediaError

    fake_wechat_api.media["BIG"] = ("image/jpeg", b"\xff\xd8\xff" + b"\0" * 5000)
    api = client(fake_wechat_api)
    try:
        try:
            await api.download_media("EXPIRED", max_bytes=10_000)
        except MediaError as error:
            assert error.reason == "failed" and error.errcode == 40007
        else:
            raise AssertionError("an unknown media id must fail")
        try:
            await api.download_media("BIG", max_bytes=1000)
        except MediaError as error:
            assert error.reason == "too_large"
        else:
            raise AssertionError("an oversize file must be refused")
    finally:
        await api.close()
    unconfigured = WeChatApiClient(None, None, fake_wechat_api.url)
    try:
        await unconfigured.download_media("X", 10)
    except MediaError as error:
        assert error.reason == "not_configured"
    else:
        raise AssertionError("no credentials, no download")


async def test_media_retries_once_with_a_fresh_token(fake_wechat_api: FakeWeChatApi) -> None:
    from tests.fakes import PNG_1PX

    fake_wechat_api.media["M"] = ("image/png", PNG_1PX)
    api = client(fake_wechat_api)
    try:
        await api.get_access_token()
        fake_wechat_api.current_token = "REVOKED"  # another process refreshed it
        fake_wechat_api.issued = 5
        media = await api.download_media("M", max_bytes=10_000)
    finally:
        await api.close()
    assert media.data == PNG_1PX and len(fake_wechat_api.token_requests) == 2


async def test_processes_without_redis_share_the_token_through_the_database(
    fake_wechat_api: FakeWeChatApi, db_url: str
) -> None:
    # `make run`: the Rasa server, the action server and the web app share no Redis
    settings = replace(
        load_settings(),
        redis_url=None,
        database_url=db_url,
        wechat_api_base=fake_wechat_api.url,
        wechat_appid=APPID,
        wechat_app_secret=APP_SECRET,
    )
    processes = [WeChatApiClient.for_deployment(settings) for _ in range(3)]
    try:
        assert all(api.shared is not None and api.shared.name == "database" for api in processes)
        first = await asyncio.gather(
            *(api.send_text(f"o{i}", "hi") for i, api in enumerate(processes))
        )
        fake_wechat_api.current_token = "REVOKED"
        again = await asyncio.gather(*(api.send_text("oX", "again") for api in processes))
    finally:
        for api in processes:
            await api.close()
    assert all(r.ok for r in first + again)
    assert len(fake_wechat_api.token_requests) == 2  # once, and once after WeChat revoked it
