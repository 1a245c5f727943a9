"""The simulator's HTTP face: the send endpoint speaks WeChat's protocol to the webhook,
the customer-service API stand-in stores what it is sent, the ticket panel's data."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.channels.wechat_api import SendStatus, WeChatApiClient
from bot.channels.wechat_crypto import compute_signature
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.tickets import service
from bot.web.app import create_app
from tests.web.simulator.conftest import TOKEN, Harness, login_admin, make_settings

OPENID = "oSimTestResident000000000001"


async def post_send(h: Harness, payload: dict, status: int = 200) -> dict:
    response = await h.client.post("/simulator/api/send", json=payload)
    assert response.status == status, await response.text()
    return await response.json()


# -- send: the real protocol ----------------------------------------------------------------


async def test_text_is_posted_signed_as_wechat_does(harness: Harness) -> None:
    data = await post_send(harness, {"openid": OPENID, "text": "俺家暖气不热好几天了"})

    assert data == {"reply": "收到：俺家暖气不热好几天了", "deferred": False, "error": None}
    [got] = harness.webhook.received
    query = got.query
    assert query["signature"] == compute_signature(TOKEN, query["timestamp"], query["nonce"])
    assert query["openid"] == OPENID
    assert "encrypt_type" not in query  # plaintext mode
    assert got.message.msg_type == "text"
    assert got.message.from_user == OPENID
    assert got.message.content == "俺家暖气不热好几天了"
    assert got.message.msg_id and int(got.message.msg_id) > 0
    assert harness.webhook.rejected == []


async def test_safe_mode_encrypts_and_decrypts_the_reply(safe_harness: Harness) -> None:
    data = await post_send(safe_harness, {"openid": OPENID, "text": "你好"})

    assert data["reply"] == "收到：你好"
    [got] = safe_harness.webhook.received
    assert got.query["encrypt_type"] == "aes"
    assert b"<Encrypt>" in got.body and "你好".encode() not in got.body
    assert got.message.content == "你好"


async def test_location_and_image_fields(harness: Harness) -> None:
    harness.webhook.answer = lambda m: f"{m.msg_type}"
    await post_send(
        harness,
        {"openid": OPENID, "location": {"lat": 36.661, "lon": 117.0285, "label": "和平新村"}},
    )
    photo = harness.url("/static/simulator-photo.svg")
    await post_send(harness, {"openid": OPENID, "image_url": photo})

    location, image = (r.message for r in harness.webhook.received)
    assert location.msg_type == "location"
    assert location.location is not None
    assert (location.location.latitude, location.location.longitude) == (36.661, 117.0285)
    assert location.location.label == "和平新村"
    assert image.msg_type == "image"
    assert image.pic_url == photo and image.media_id


async def test_success_means_the_answer_comes_later(harness: Harness) -> None:
    harness.webhook.answer = lambda m: ""
    data = await post_send(harness, {"openid": OPENID, "text": "暖气不热"})
    assert data == {"reply": "", "deferred": True, "error": None}


async def test_webhook_down_reads_as_wechat_shows_it(demo_engine) -> None:
    settings = make_settings(demo_engine, rasa_url="http://127.0.0.1:9")
    async with TestClient(TestServer(create_app(settings, engine=demo_engine))) as client:
        await login_admin(client)
        response = await client.post("/simulator/api/send", json={"openid": OPENID, "text": "hi"})
        assert response.status == 502
        data = await response.json()
    assert data["error"].startswith("该公众号暂时无法提供服务")


async def test_wrong_token_on_the_webhook_is_an_error(demo_engine) -> None:
    # The webhook refuses a signature made with another token: the page says so.
    from tests.web.simulator.conftest import start_harness

    h, closers = await start_harness(demo_engine, wechat_token="another-token")
    try:
        data = await post_send(h, {"openid": OPENID, "text": "你好"}, status=502)
        assert "暂时无法提供服务" in data["error"]
        assert h.webhook.rejected == ["signature"]
    finally:
        for closer in closers:
            await closer.close()


@pytest.mark.parametrize(
    "payload",
    [
        {"openid": "bad id!", "text": "x"},
        {"openid": "", "text": "x"},
        {"openid": OPENID},
        {"openid": OPENID, "text": "   "},
        {"openid": OPENID, "text": "x" * 601},
        {"openid": OPENID, "text": "x", "image_url": "http://127.0.0.1/a.png"},
        {"openid": OPENID, "location": {"lat": "north", "lon": 1}},
        {"openid": OPENID, "location": {"lat": 95, "lon": 1}},
        {"openid": OPENID, "image_url": "javascript:alert(1)"},
        ["not", "an", "object"],
    ],
)
async def test_bad_requests_are_refused(harness: Harness, payload: object) -> None:
    data = await post_send(harness, payload, status=400)  # type: ignore[arg-type]
    assert data["error"]
    assert harness.webhook.received == []


async def test_send_takes_json_only(harness: Harness) -> None:
    response = await harness.client.post(
        "/simulator/api/send", data={"openid": OPENID, "text": "x"}
    )
    assert response.status == 415
    assert harness.webhook.received == []


# -- the customer-service API stand-in --------------------------------------------------------


async def test_stand_in_serves_the_real_client(harness: Harness) -> None:
    """bot.channels.wechat_api (what the assistant uses) talks to the stand-in."""
    api = WeChatApiClient("wxdev", "dev-secret", harness.url("/simulator/wechat-api"))
    try:
        first = await api.send_text(OPENID, "您反映的供暖供气问题已处理")
        second = await api.send_text(OPENID, "<b>第二条</b>")
    finally:
        await api.close()
    assert first.status is SendStatus.OK and second.ok

    response = await harness.client.get("/simulator/api/inbox", params={"openid": OPENID})
    data = await response.json()
    contents = [m["content"] for m in data["messages"]]
    assert contents == ["您反映的供暖供气问题已处理", "<b>第二条</b>"]
    first_id = data["messages"][0]["id"]

    later = await harness.client.get(
        "/simulator/api/inbox", params={"openid": OPENID, "after": str(first_id)}
    )
    assert [m["content"] for m in (await later.json())["messages"]] == ["<b>第二条</b>"]
    other = await harness.client.get("/simulator/api/inbox", params={"openid": "oSomeoneElse"})
    assert (await other.json())["messages"] == []


async def test_stand_in_checks_tokens_and_bodies(harness: Harness) -> None:
    c = harness.client
    base = "/simulator/wechat-api/cgi-bin"
    bad = await c.get(f"{base}/token", params={"grant_type": "password"})
    assert (await bad.json())["errcode"] == 40002
    token_response = await c.get(
        f"{base}/token",
        params={"grant_type": "client_credential", "appid": "wxdev", "secret": "s"},
    )
    token_data = await token_response.json()
    assert token_data["expires_in"] == 7200
    token = token_data["access_token"]

    send = f"{base}/message/custom/send"
    wrong = await c.post(send, params={"access_token": "nope"}, json={"touser": OPENID})
    assert (await wrong.json())["errcode"] == 40001
    empty = await c.post(send, params={"access_token": token}, data=b"")
    assert (await empty.json())["errcode"] == 44002
    no_user = await c.post(
        send, params={"access_token": token}, json={"msgtype": "text", "text": {"content": "x"}}
    )
    assert (await no_user.json())["errcode"] == 40003
    ok = await c.post(
        send,
        params={"access_token": token},
        json={"touser": OPENID, "msgtype": "text", "text": {"content": "好的"}},
    )
    assert await ok.json() == {"errcode": 0, "errmsg": "ok"}

    # the media API hands out the demo photo for the simulator's MediaIds
    media = f"{base}/media/get"
    photo = await c.get(media, params={"access_token": token, "media_id": "media_0123abcd"})
    assert photo.content_type == "image/png"
    assert (await photo.read()).startswith(b"\x89PNG")
    unknown = await c.get(media, params={"access_token": token, "media_id": "other"})
    assert (await unknown.json())["errcode"] == 40007
    forged = await c.get(media, params={"access_token": "nope", "media_id": "media_1"})
    assert (await forged.json())["errcode"] == 40001


async def test_stand_in_holds_callers_to_a_configured_secret(demo_engine) -> None:
    from tests.web.simulator.conftest import start_harness

    h, closers = await start_harness(demo_engine, wechat_app_secret="right")
    try:
        for secret, errcode in (("wrong", 40125), ("right", None)):
            response = await h.client.get(
                "/simulator/wechat-api/cgi-bin/token",
                params={"grant_type": "client_credential", "appid": "wx", "secret": secret},
            )
            assert (await response.json()).get("errcode") == errcode
    finally:
        for closer in closers:
            await closer.close()


# -- my tickets ---------------------------------------------------------------------------------


async def test_tickets_list_the_residents_tickets(harness: Harness) -> None:
    with session_scope(harness.engine) as session:
        located = get_locator(session).locate_text("和平新村3号楼2单元501")
        ticket = service.open_ticket(
            session,
            sender_id=OPENID,
            channel="wechat",
            message_id="m1",
            category_code="HEATING",
            description="暖气不热好几天了",
            location=located,
        )
        number = ticket.number
        service.open_ticket(
            session,
            sender_id="oSomeoneElse",
            channel="wechat",
            message_id="m2",
            category_code="NOISE",
            description="楼上太吵",
            location=located,
        )

    response = await harness.client.get("/simulator/api/tickets", params={"openid": OPENID})
    [line] = (await response.json())["tickets"]
    assert line["number"] == number
    assert line["category"] == "供暖供气"
    assert line["status"] == "open" and line["status_label"] == "待受理"
    assert line["grid"] == "和平新村第一网格" and line["grid_code"] == "HPXC-01"
    assert line["handler"] == "网格员王芳"
    assert line["community"] == "和平新村社区"

    bad = await harness.client.get("/simulator/api/tickets", params={"openid": "x y"})
    assert bad.status == 400


# -- the page -------------------------------------------------------------------------------


async def test_page_offers_demo_locations_inside_grids(harness: Harness) -> None:
    response = await harness.client.get("/simulator")
    assert response.status == 200
    html = await response.text()
    assert "我的工单" in html and "发送位置" in html and "发送图片" in html
    assert 'data-label="和平新村社区 和平新村第一网格"' in html
    assert 'data-lat="36.66095" data-lon="117.02845"' in html
    assert "裕园社区 裕园第一网格" in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_every_point_offered_lies_in_its_grid(harness: Harness) -> None:
    from bot import simulator

    with session_scope(harness.engine, readonly=True) as session:
        points = simulator.demo_locations(session)
        locator = get_locator(session)
        assert len(points) == 7
        for point in points:
            located = locator.locate_point(point.lat, point.lon)
            assert located.grid is not None
            assert point.label.endswith(locator.grid(located.grid).name)


async def test_switched_off_means_not_served(demo_engine) -> None:
    settings = make_settings(demo_engine, simulator_enabled=False)
    async with TestClient(TestServer(create_app(settings, engine=demo_engine))) as client:
        for path in ("/simulator", "/simulator/api/inbox?openid=o1"):
            assert (await client.get(path)).status == 404
        token = await client.get("/simulator/wechat-api/cgi-bin/token")
        assert token.status == 404
