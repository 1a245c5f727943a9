"""The simulator page in headless Chromium, against a fake webhook (no trained model):
chat, location, picture, late customer-service messages, my tickets, escaping."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy.engine import Engine

from bot.routing.directory import apply_directory, load_directory_file
from bot.routing.locator import get_locator, refresh_locator
from bot.settings import PROJECT_ROOT
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.tickets import service
from bot.web.app import create_app
from tests.browser.conftest import (
    PHONE,
    LoopThread,
    Screenshots,
    log_in_as_admin,
    requires_chromium,
)
from tests.web.simulator.conftest import ADMIN_PASSWORD, FakeWebhook, make_settings

pytestmark = requires_chromium

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & 再见'


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    refresh_locator()
    engine = make_engine(f"sqlite:///{tmp_path / 'page.db'}")
    upgrade_to_head(engine)
    with session_scope(engine) as session:
        apply_directory(session, load_directory_file(PROJECT_ROOT / "data/grids/jinan-demo.yml"))
    yield engine
    engine.dispose()
    refresh_locator()


def answer(message: Any) -> str:
    if message.msg_type == "location":
        loc = message.location
        return f"位置收到：{loc.label}（{loc.latitude:.4f}, {loc.longitude:.4f}）"
    if message.msg_type == "image":
        return "照片收到"
    if message.content == "稍后回复":
        return ""  # `success`: the answer comes through the customer-service API
    if message.content == "来点怪的":
        return HOSTILE
    return f"收到：{message.content}"


@pytest.fixture
def site(loop_thread: LoopThread, engine: Engine) -> dict[str, Any]:
    webhook = FakeWebhook(answer=answer)

    def hook_app() -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks/wechat/webhook", webhook.handle)
        return app

    rasa_url = loop_thread.serve(hook_app)
    settings = make_settings(engine, rasa_url=rasa_url)
    web_url = loop_thread.serve(lambda: create_app(settings, engine=engine))
    return {"url": web_url, "webhook": webhook, "engine": engine}


def push(web_url: str, openid: str, content: str) -> dict:
    """What the assistant does for a late answer: token, then a customer-service text."""
    base = web_url + "/simulator/wechat-api/cgi-bin"
    with urllib.request.urlopen(
        base + "/token?grant_type=client_credential&appid=wxdev&secret=dev", timeout=5
    ) as response:
        token = json.loads(response.read())["access_token"]
    body = json.dumps(
        {"touser": openid, "msgtype": "text", "text": {"content": content}}, ensure_ascii=False
    ).encode()
    request = urllib.request.Request(
        f"{base}/message/custom/send?access_token={token}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def send_text(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.click("#send")


def test_chat_location_picture_and_escaping(
    browser: Any, site: dict[str, Any], screenshots: Screenshots
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(**PHONE)
    page = screenshots.track("simulator", context.new_page())
    log_in_as_admin(page, site["url"], ADMIN_PASSWORD)
    openid = page.text_content("#openid") or ""
    assert re.fullmatch(r"oSim[A-Za-z0-9_-]{24}", openid)

    messages = page.locator("#messages")
    send_text(page, "你好")
    expect(messages.locator(".msg.resident .bubble").last).to_have_text("你好")
    expect(messages.locator(".msg.account .bubble").last).to_have_text("收到：你好")

    # The assistant's words are text, never markup.
    send_text(page, "来点怪的")
    expect(messages.locator(".msg.account .bubble").last).to_have_text(HOSTILE)
    assert page.evaluate("window.__pwned") is None
    assert messages.locator(".msg.account img").count() == 0

    # A location inside grid HPXC-01.
    page.click("#send-location")
    page.click("button.place:has-text('和平新村第一网格')")
    expect(messages.locator(".msg.account .bubble").last).to_contain_text(
        "位置收到：和平新村社区 和平新村第一网格"
    )
    # A picture served by the web app itself.
    page.click("#send-image")
    expect(messages.locator(".msg.account .bubble").last).to_have_text("照片收到")
    expect(messages.locator(".msg.resident img")).to_have_count(1)

    received = [r.message for r in site["webhook"].received]
    assert [m.msg_type for m in received] == ["text", "text", "location", "image"]
    assert all(m.from_user == openid for m in received)
    assert received[2].location.latitude == pytest.approx(36.66095)
    assert received[3].pic_url == site["url"] + "/static/simulator-photo.svg"

    # No passive answer: it arrives later through the customer-service API.
    send_text(page, "稍后回复")
    expect(messages.locator(".msg.system").last).to_contain_text("客服消息")
    assert push(site["url"], openid, "这是稍后的回答 <b>不加粗</b>")["errcode"] == 0
    late = messages.locator(".msg.account", has_text="这是稍后的回答")
    expect(late).to_have_count(1, timeout=8000)
    expect(late.locator(".bubble")).to_have_text("客服消息这是稍后的回答 <b>不加粗</b>")
    assert messages.locator(".msg.account b").count() == 0

    # My tickets: a ticket of this resident shows after the next message.
    with session_scope(site["engine"]) as session:
        ticket = service.open_ticket(
            session,
            sender_id=openid,
            channel="wechat",
            message_id="page-1",
            category_code="HEATING",
            description="暖气不热",
            location=get_locator(session).locate_text("和平新村3号楼2单元501"),
        )
        number = ticket.number
    send_text(page, "查一下")
    row = page.locator(f"#ticket-list li[data-number='{number}']")
    expect(row).to_contain_text("供暖供气")
    expect(row).to_contain_text("待受理")
    expect(row).to_contain_text("和平新村第一网格")
    expect(row).to_contain_text("王芳")
    screenshots.take(page, "simulator-phone")

    # The conversation survives a reload; another resident starts afresh.
    page.reload()
    expect(page.locator("#openid")).to_have_text(openid)
    expect(messages.locator(".msg.account", has_text="这是稍后的回答")).to_have_count(1)
    page.click("#new-resident")
    expect(page.locator("#openid")).not_to_have_text(openid)
    expect(messages.locator(".msg.resident")).to_have_count(0)
    expect(page.locator("#no-tickets")).to_be_visible()
    context.close()


def test_wide_screen_shows_tickets_beside_the_chat(
    browser: Any, site: dict[str, Any], screenshots: Screenshots
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = screenshots.track("desktop", context.new_page())
    log_in_as_admin(page, site["url"], ADMIN_PASSWORD)
    phone = page.locator(".phone").bounding_box()
    tickets = page.locator(".tickets").bounding_box()
    assert phone and tickets and tickets["x"] >= phone["x"] + phone["width"]
    screenshots.take(page, "simulator-desktop")
    context.close()
