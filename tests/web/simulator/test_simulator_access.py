"""The simulator is a development tool: only for logged-in admins, and off in
production unless switched on explicitly (issue 15)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.accounts import set_password
from bot.settings import DEV_WECHAT_APP_SECRET
from bot.store.db import session_scope
from bot.web.app import create_app
from tests.web.simulator.conftest import CSRF_RE, Harness, login_admin, make_settings

OPENID = "oSimTestResident000000000001"
PATHS = (
    "/simulator",
    f"/simulator/api/tickets?openid={OPENID}",
    f"/simulator/api/inbox?openid={OPENID}",
)


@pytest.fixture
async def anonymous(harness: Harness):
    async with TestClient(TestServer(harness.client.app, host="127.0.0.1")) as client:
        yield client


async def test_logged_out_visitors_get_the_login_page_and_cannot_send(
    harness: Harness, anonymous: TestClient
) -> None:
    for path in PATHS:
        response = await anonymous.get(path, allow_redirects=False)
        assert response.status == 302 and response.headers["Location"].startswith("/login")
    response = await anonymous.post(
        "/simulator/api/send", json={"openid": OPENID, "text": "撤销"}, allow_redirects=False
    )
    assert response.status in (302, 403)
    assert harness.webhook.received == []


async def test_a_grid_worker_is_not_an_admin(harness: Harness, anonymous: TestClient) -> None:
    with session_scope(harness.engine) as session:
        set_password(session, "13800000001", "worker-pass-1234")
    page = await (await anonymous.get("/login")).text()
    login = await anonymous.post(
        "/login",
        data={
            "phone": "13800000001",
            "password": "worker-pass-1234",
            "csrf_token": CSRF_RE.search(page).group(1),
        },
        allow_redirects=False,
    )
    assert login.status == 303
    for path in PATHS:
        assert (await anonymous.get(path)).status == 403
    assert harness.webhook.received == []


async def test_an_admin_without_the_csrf_header_cannot_send(harness: Harness) -> None:
    del harness.client.session.headers["X-CSRF-Token"]
    response = await harness.client.post(
        "/simulator/api/send", json={"openid": OPENID, "text": "是"}, allow_redirects=False
    )
    assert response.status == 403
    assert harness.webhook.received == []


async def test_an_admin_uses_it(harness: Harness) -> None:
    response = await harness.client.post(
        "/simulator/api/send", json={"openid": OPENID, "text": "你好"}
    )
    assert response.status == 200
    assert len(harness.webhook.received) == 1


@pytest.mark.parametrize(
    ("environment", "served"),
    [
        ({}, True),  # development: no secret at all
        ({"WECHAT_APP_SECRET": DEV_WECHAT_APP_SECRET}, True),  # make run's stand-in secret
        ({"WECHAT_APP_SECRET": "a-real-secret"}, False),  # production
        ({"WECHAT_APP_SECRET": "a-real-secret", "SIMULATOR_ENABLED": "true"}, True),
        ({"SIMULATOR_ENABLED": "false"}, False),
    ],
)
async def test_served_only_without_a_real_secret_or_when_switched_on(
    demo_engine, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], served: bool
) -> None:
    from bot.settings import load_settings

    for name in ("WECHAT_APP_SECRET", "SIMULATOR_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    enabled = load_settings().simulator_enabled
    assert enabled is served
    settings = make_settings(
        demo_engine,
        simulator_enabled=enabled,
        wechat_app_secret=environment.get("WECHAT_APP_SECRET"),
    )
    async with TestClient(TestServer(create_app(settings, engine=demo_engine))) as client:
        if not served:
            # not even an admin: the routes do not exist
            for path in (*PATHS, "/simulator/wechat-api/cgi-bin/token"):
                assert (await client.get(path)).status == 404
            return
        await login_admin(client)
        assert (await client.get("/simulator")).status == 200
