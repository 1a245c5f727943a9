"""Deferred news in the WeChat channel's reply; the sender running inside the web app."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiohttp.test_utils import TestServer
from sqlalchemy.engine import Engine

from bot.channels.wechat import WeChatConfig, WeChatInput
from bot.channels.wechat_protocol import REPLY_SEPARATOR, parse_message
from bot.channels.wechat_sender import build_incoming_xml
from bot.notify import sender
from bot.notify.outbox import pop_deferred_notices_from_store
from bot.settings import Settings
from bot.store.db import session_scope
from bot.store.models import utcnow
from bot.tickets import service
from bot.web.app import create_app
from tests.channels.conftest import FakeRasa
from tests.fakes import FakeRobot, FakeWeChatApi
from tests.notify.conftest import RESIDENT, notifications, open_report


def channel(**kwargs) -> WeChatInput:
    return WeChatInput(WeChatConfig(token="t", api_base="http://127.0.0.1:9"), **kwargs)


async def say(ch: WeChatInput, text: str, rasa: FakeRasa) -> str:
    incoming = parse_message(build_incoming_xml(text, user=RESIDENT))
    return await ch.handle(incoming, rasa)


async def test_deferred_news_comes_before_the_reply_once(engine: Engine) -> None:
    number = open_report(engine, channel="rest")  # not pushable: deferred at once
    with session_scope(engine) as session:
        service.resolve(session, number, actor="worker:1", note="修好了")
    other = open_report(engine, "m9", channel="rest", sender_id="someone-else")
    with session_scope(engine) as session:
        service.accept(session, other, actor="worker:1")  # not this resident's news
    ch = channel(deferred_notices=pop_deferred_notices_from_store)
    rasa = FakeRasa(replies=[{"text": "您好！有什么可以帮您？"}])
    reply = await say(ch, "你好", rasa)
    notice, answer = reply.split(REPLY_SEPARATOR)
    assert notice.startswith("您反映的供暖供气问题已处理：修好了")
    assert "满意请回复“满意”" in notice
    assert answer == "您好！有什么可以帮您？"
    assert await say(ch, "你好", rasa) == "您好！有什么可以帮您？"  # given once
    [kept] = notifications(engine, target="someone-else")
    assert kept.status == "deferred"


async def test_failing_store_never_costs_the_reply() -> None:
    async def broken(_openid: str) -> list[str]:
        raise RuntimeError("database down")

    reply = await say(channel(deferred_notices=broken), "你好", FakeRasa())
    assert reply == "好的"


async def test_notices_are_not_taken_when_the_turn_failed() -> None:
    taken: list[str] = []

    async def notices(openid: str) -> list[str]:
        taken.append(openid)
        return ["消息"]

    assert await say(channel(deferred_notices=notices), "你好", FakeRasa(fail=True)) == ""
    assert taken == []


def test_rasa_gets_the_store_backed_channel() -> None:
    ch = WeChatInput.from_credentials({"token": "t"})
    assert ch.deferred_notices is pop_deferred_notices_from_store
    assert channel().deferred_notices is None  # tests and tools opt in


async def test_web_app_runs_the_sender_and_stops_it(
    engine: Engine, settings: Settings, fake_robot: FakeRobot, fake_wechat_api: FakeWeChatApi
) -> None:
    app = create_app(
        replace(settings, notify_interval_seconds=0.05, admin_password="test-password-123"),
        engine=engine,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        number = open_report(engine)
        for _ in range(200):
            if fake_robot.received:
                break
            await asyncio.sleep(0.05)
        assert number in fake_robot.contents()[0]
        with session_scope(engine) as session:
            service.accept(session, number, actor="worker:1")
        await fake_wechat_api.wait_for_sends(1)
    finally:
        await server.close()  # cancels the sender; must not hang or raise
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "notification-sender"]
    assert tasks == []
    assert {r.status for r in notifications(engine)} == {"sent"}


async def test_the_sender_can_be_switched_off(
    engine: Engine, settings: Settings, fake_robot: FakeRobot
) -> None:
    app = create_app(
        replace(settings, notify_interval_seconds=0, admin_password="test-password-123"),
        engine=engine,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        open_report(engine)
        await asyncio.sleep(0.3)
    finally:
        await server.close()
    assert fake_robot.received == []


async def test_shutdown_records_the_round_in_progress(
    engine: Engine, settings: Settings, fake_robot: FakeRobot
) -> None:
    fake_robot.delay = 0.5  # the robot answers slowly
    app = create_app(
        replace(settings, notify_interval_seconds=0.05, admin_password="test-password-123"),
        engine=engine,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    open_report(engine)
    try:
        for _ in range(200):  # until the sender has claimed the row
            if notifications(engine)[0].attempts:
                break
            await asyncio.sleep(0.02)
    finally:
        await server.close()
    [row] = notifications(engine)
    assert row.status == "sent"  # not sent again after a restart


async def test_shutdown_does_not_wait_for_a_stuck_robot(
    engine: Engine, settings: Settings, fake_robot: FakeRobot, monkeypatch
) -> None:
    monkeypatch.setattr(sender, "SHUTDOWN_GRACE_SECONDS", 0.2)
    fake_robot.delay = 30
    app = create_app(
        replace(settings, notify_interval_seconds=0.05, admin_password="test-password-123"),
        engine=engine,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    open_report(engine)
    try:
        for _ in range(200):
            if notifications(engine)[0].attempts:
                break
            await asyncio.sleep(0.02)
    finally:
        started = asyncio.get_running_loop().time()
        await server.close()
        assert asyncio.get_running_loop().time() - started < 3
    [row] = notifications(engine)
    # Claimed but not known to be sent: tried again once the lease has passed.
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > utcnow()
