"""The residents' "my reports" page in headless Chromium on a phone-sized window.

The web app and a fake WeChat (authorisation page and API, tests/fakes.py) run on
127.0.0.1. The resident opens /me as from the Official Account's menu, is sent
through WeChat's authorisation and back, sees their tickets with the worker's
notes, rates one 满意 and withdraws another. Replaying the sign-in link in another
browser signs no one in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.settings import load_settings
from bot.store.db import make_engine, session_scope
from bot.tickets import service
from bot.web.app import create_app
from tests.browser.conftest import PHONE, LoopThread, Screenshots, requires_chromium
from tests.conftest import free_port
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi
from tests.web.conftest import _prepare, add_ticket

pytestmark = requires_chromium

ME = "oBrowserResident1"


def _serve_on(thread: LoopThread, app: web.Application, port: int) -> str:
    async def start() -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        thread._runners.append(runner)
        return f"http://127.0.0.1:{port}"

    return thread.run(start())


@pytest.fixture
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'web.db'}")
    _prepare(engine)
    open_number = add_ticket(engine, sender_id=ME, description="楼道灯坏了", category="FACILITY")
    resolved_number = add_ticket(engine, sender_id=ME, description="暖气不热")
    add_ticket(engine, sender_id="oSomeoneElse", description="别人的事")
    with session_scope(engine) as session:
        service.add_note(session, resolved_number, "worker:1:王芳", "已联系供热站")
        service.resolve(session, resolved_number, "worker:1:王芳", note="排气后室温二十度")
    thread = LoopThread()
    fake = FakeWeChatApi(authorize_as=ME)
    fake_url = thread.serve(lambda: _fake_app(fake))
    port = free_port()
    settings = replace(
        load_settings(),
        database_url=str(engine.url),
        tracker_database_url=f"sqlite:///{tmp_path / 'conversations.db'}",
        web_secret_key="browser-test-secret",
        wechat_appid=APPID,
        wechat_app_secret=APP_SECRET,
        wechat_api_base=fake_url,
        wecom_api_base="http://127.0.0.1:9",
        wechat_oauth_authorize_url=fake_url + "/connect/oauth2/authorize",
        web_base_url=f"http://127.0.0.1:{port}",
        review_ingest_interval_seconds=0,
    )
    try:
        base = _serve_on(thread, create_app(settings, engine=engine), port)
        yield {
            "base": base,
            "fake": fake,
            "open": open_number,
            "resolved": resolved_number,
            "engine": engine,
        }
    finally:
        thread.close()
        engine.dispose()


def _fake_app(fake: FakeWeChatApi) -> web.Application:
    app = web.Application()
    for method, path, handler in fake.routes():
        app.router.add_route(method, path, handler)
    return app


def _status(engine: Any, number: str) -> str:
    with session_scope(engine, readonly=True) as session:
        return service.get_ticket(session, number).status


def test_resident_signs_in_rates_and_withdraws(
    browser: Any, site: dict[str, Any], screenshots: Screenshots
) -> None:
    context = browser.new_context(**PHONE)
    page = screenshots.track("mine", context.new_page())
    page.goto(site["base"] + "/me")
    # (the browser keeps the authorisation URL's #wechat_redirect through the redirects)
    assert page.url.split("#")[0] == site["base"] + "/me", page.url
    resolved = page.locator(f"#t-{site['resolved']}")
    assert "已处理，待确认" in resolved.inner_text()
    assert "已联系供热站" in resolved.inner_text()
    assert page.locator(f"#t-{site['open']} .status").inner_text() == "待受理"
    assert "别人的事" not in page.content()
    callback = site["fake"].authorize_requests[0]["redirect_uri"]
    assert callback == site["base"] + "/me/oauth"

    resolved.get_by_role("button", name="满意", exact=True).click()
    page.wait_for_url("**/me?done=satisfied**")
    assert "感谢您的评价" in page.locator(".flash.ok").inner_text()
    assert page.locator(f"#t-{site['resolved']} .status").inner_text() == "已办结"
    assert page.locator(f"#t-{site['resolved']} button").count() == 0
    assert _status(site["engine"], site["resolved"]) == "closed"

    page.locator(f"#t-{site['open']}").get_by_role("button", name="撤销", exact=True).click()
    page.wait_for_url("**/me?done=cancel**")
    assert page.locator(f"#t-{site['open']} .status").inner_text() == "已撤销"
    assert _status(site["engine"], site["open"]) == "cancelled"
    screenshots.take(page, "my-reports")

    # The sign-in link with its code, replayed in another browser: no one's tickets.
    code = next(iter(site["fake"].oauth_used))
    state = site["fake"].authorize_requests[0]["state"]
    other = browser.new_context(**PHONE).new_page()
    other.goto(f"{site['base']}/me/oauth?code={code}&state={state}")
    assert "登录失败" in other.content()
    assert site["open"] not in other.content()
    context.close()
