"""Delivering the outbox to a fake WeCom robot and a fake WeChat API."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import timedelta

import aiohttp
from sqlalchemy.engine import Engine

from bot.notify import outbox
from bot.notify.sender import MAX_ATTEMPTS, deliver_due
from bot.notify.wecom import RateLimiter
from bot.settings import Settings
from bot.store.db import make_engine, session_scope
from bot.store.models import utcnow
from bot.tickets import service
from tests.fakes import FakeWeChatApi
from tests.notify.conftest import (
    GRID_KEY,
    RESIDENT,
    FakeRobot,
    notifications,
    open_report,
    ticket_status,
)


async def test_new_ticket_reaches_the_robot(
    engine: Engine, settings: Settings, http: aiohttp.ClientSession, fake_robot: FakeRobot
) -> None:
    number = open_report(engine)
    now = utcnow()
    report = await deliver_due(engine, http, settings, now, limiter=RateLimiter())
    [row] = notifications(engine)
    assert report.sent == [row.id]
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, now)
    [received] = fake_robot.received
    assert received["key"] == GRID_KEY
    assert received["json"]["msgtype"] == "markdown"
    content = received["json"]["markdown"]["content"]
    assert number in content and "王芳" in content and "<@wangfang>" in content
    assert "供暖供气".encode() in received["raw"]  # UTF-8, not \\u escapes
    # Sent once: nothing is due any more.
    again = await deliver_due(engine, http, settings, now + timedelta(hours=1))
    assert again.sent == [] and len(fake_robot.received) == 1


async def test_limiter_makes_the_21st_message_wait() -> None:
    clock = [1000.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(clock=lambda: clock[0], sleep=sleep)
    for _ in range(20):
        await limiter.acquire("k")
        clock[0] += 1.0  # 20 messages within 20 s
    assert sleeps == []
    await limiter.acquire("k")  # the 21st, at t=1020
    assert sleeps == [40.0]  # waits until the first one is a minute old
    assert limiter.wait_time("other") == 0.0  # per key


async def test_21_messages_to_one_robot_in_a_minute(
    engine: Engine, settings: Settings, http: aiohttp.ClientSession, fake_robot: FakeRobot
) -> None:
    for i in range(21):
        open_report(engine, f"m{i}")
    limiter = RateLimiter()
    now = utcnow()
    report = await deliver_due(engine, http, settings, now, limiter=limiter)
    assert len(report.sent) == 20 and len(fake_robot.received) == 20
    [waiting] = notifications(engine, status="pending")
    assert report.postponed == [waiting.id]
    assert waiting.attempts == 0  # waiting for a slot is no failed attempt
    assert waiting.next_attempt_at == now + timedelta(seconds=60)
    # Not sent before the minute is over, then sent.
    half = await deliver_due(engine, http, settings, now + timedelta(seconds=30), limiter=limiter)
    assert half.sent == [] and len(fake_robot.received) == 20
    later = await deliver_due(engine, http, settings, now + timedelta(seconds=60), limiter=limiter)
    assert later.sent == [waiting.id] and len(fake_robot.received) == 21


async def test_failures_are_retried_with_backoff_and_recorded(
    engine: Engine, settings: Settings, http: aiohttp.ClientSession, fake_robot: FakeRobot
) -> None:
    number = open_report(engine)
    fake_robot.script = [("http", 500), ("sleep", 2.0), ("errcode", 93000)]
    limiter = RateLimiter()
    rng = random.Random(7)
    now = utcnow()

    async def attempt(at):
        return await deliver_due(
            engine, http, settings, at, limiter=limiter, rng=rng, timeout_seconds=0.5
        )

    report = await attempt(now)
    [row] = notifications(engine)
    assert report.retried == [row.id]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 500")
    assert now + timedelta(seconds=8) <= row.next_attempt_at <= now + timedelta(seconds=12)
    assert ticket_status(engine, number) == "open"  # the ticket is unaffected

    assert (await attempt(now + timedelta(seconds=5))).retried == []  # not due yet
    now = row.next_attempt_at
    await attempt(now)
    [row] = notifications(engine)
    assert (row.attempts, row.last_error) == (2, "timeout")
    assert now + timedelta(seconds=24) <= row.next_attempt_at <= now + timedelta(seconds=36)

    now = row.next_attempt_at
    await attempt(now)
    [row] = notifications(engine)
    assert row.attempts == 3 and row.last_error.startswith("errcode 93000")
    assert now + timedelta(seconds=96) <= row.next_attempt_at <= now + timedelta(seconds=144)

    now = row.next_attempt_at
    assert (await attempt(now)).sent == [row.id]
    [row] = notifications(engine)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 4, now)
    assert row.last_error.startswith("errcode 93000")  # the history of the attempts
    assert len(fake_robot.received) == 1
    assert ticket_status(engine, number) == "open"


async def test_a_message_that_keeps_failing_is_kept_as_failed(
    engine: Engine, settings: Settings, http: aiohttp.ClientSession, fake_robot: FakeRobot
) -> None:
    number = open_report(engine)
    fake_robot.always = ("http", 502)
    now = utcnow()
    for _ in range(MAX_ATTEMPTS):
        await deliver_due(engine, http, settings, now, limiter=RateLimiter())
        [row] = notifications(engine)
        now = row.next_attempt_at or now
    [row] = notifications(engine)
    assert (row.status, row.attempts, row.last_error) == ("failed", MAX_ATTEMPTS, "HTTP 502")
    assert row.next_attempt_at is None
    report = await deliver_due(engine, http, settings, now + timedelta(days=1))
    assert report.sent == report.retried == []
    assert ticket_status(engine, number) == "open"


async def test_robot_rate_limit_errcode_waits_a_minute(
    engine: Engine, settings: Settings, http: aiohttp.ClientSession, fake_robot: FakeRobot
) -> None:
    open_report(engine, "m1")
    open_report(engine, "m2")
    fake_robot.script = [("errcode", 130101)]
    now = utcnow()
    limiter = RateLimiter()
    report = await deliver_due(engine, http, settings, now, limiter=limiter)
    first, second = notifications(engine)
    assert report.postponed == [first.id, second.id]
    assert first.attempts == 0 and "130101" in first.last_error
    assert first.next_attempt_at == now + timedelta(seconds=60)
    # The robot is full for a minute: the next message waits instead of being refused.
    assert second.attempts == 0 and second.next_attempt_at >= now + timedelta(seconds=59)
    assert fake_robot.received == []
    later = await deliver_due(engine, http, settings, now + timedelta(seconds=61), limiter=limiter)
    assert sorted(later.sent) == [first.id, second.id]


async def test_resident_hears_of_accept_and_resolve_through_wechat(
    engine: Engine,
    settings: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    number = open_report(engine)
    with session_scope(engine) as session:
        service.accept(session, number, actor="worker:1")
    report = await deliver_due(engine, http, settings, utcnow(), limiter=RateLimiter())
    assert len(report.sent) == 2  # the robot's and the resident's
    with session_scope(engine) as session:
        service.resolve(session, number, actor="worker:1", note="已更换阀门")
    await deliver_due(engine, http, settings, utcnow(), limiter=RateLimiter())
    sent = [s["json"] for s in fake_wechat_api.sends]
    assert [s["touser"] for s in sent] == [RESIDENT, RESIDENT]
    assert "已由网格员王芳受理" in sent[0]["text"]["content"]
    assert sent[1]["text"]["content"].startswith("您反映的供暖供气问题已处理：已更换阀门")
    assert "满意请回复“满意”" in sent[1]["text"]["content"]
    assert {r.status for r in notifications(engine)} == {"sent"}


async def test_outside_the_window_the_news_waits_for_the_next_message(
    engine: Engine,
    settings: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    number = open_report(engine)
    with session_scope(engine) as session:
        service.resolve(session, number, actor="worker:1", note="修好了")
    fake_wechat_api.send_errcodes = [45015]
    report = await deliver_due(engine, http, settings, utcnow(), limiter=RateLimiter())
    [row] = notifications(engine, channel="wechat")
    assert report.deferred == [row.id]
    assert row.status == "deferred" and "45015" in row.last_error and row.attempts == 1
    # Not pushed again ...
    assert (await deliver_due(engine, http, settings, utcnow() + timedelta(hours=1))).sent == []
    # ... but given once with the resident's next message.
    with session_scope(engine) as session:
        texts = outbox.pop_deferred_notices(session, RESIDENT)
    assert len(texts) == 1 and "已处理：修好了" in texts[0]
    with session_scope(engine) as session:
        assert outbox.pop_deferred_notices(session, RESIDENT) == []
    [row] = notifications(engine, channel="wechat")
    assert row.status == "sent" and row.sent_at is not None


async def test_quota_and_missing_credentials_defer_too(
    engine: Engine,
    settings: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    first = open_report(engine, "m1")
    second = open_report(engine, "m2")
    with session_scope(engine) as session:
        service.accept(session, first, actor="worker:1")
    fake_wechat_api.send_errcodes = [45047]
    await deliver_due(engine, http, settings, utcnow(), limiter=RateLimiter())
    with session_scope(engine) as session:
        service.accept(session, second, actor="worker:1")
    unconfigured = replace(settings, wechat_app_secret=None)
    await deliver_due(engine, http, unconfigured, utcnow(), limiter=RateLimiter())
    quota, missing = notifications(engine, channel="wechat")
    assert quota.status == "deferred" and "45047" in quota.last_error
    assert missing.status == "deferred" and "not_configured" in missing.last_error
    assert fake_wechat_api.sends == []


async def test_a_failed_wechat_push_is_retried(
    engine: Engine,
    settings: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    number = open_report(engine)
    with session_scope(engine) as session:
        service.accept(session, number, actor="worker:1")
    fake_wechat_api.send_errcodes = [-1]  # system busy
    now = utcnow()
    await deliver_due(engine, http, settings, now, limiter=RateLimiter())
    [row] = notifications(engine, channel="wechat")
    assert (row.status, row.attempts) == ("pending", 1) and "-1" in row.last_error
    await deliver_due(engine, http, settings, row.next_attempt_at, limiter=RateLimiter())
    [row] = notifications(engine, channel="wechat")
    assert row.status == "sent" and len(fake_wechat_api.sends) == 1


async def test_two_senders_send_each_row_once(
    engine: Engine, settings: Settings, fake_robot: FakeRobot, fake_wechat_api: FakeWeChatApi
) -> None:
    for i in range(6):
        number = open_report(engine, f"m{i}", sender_id=f"oRes{i}")
        with session_scope(engine) as session:
            service.accept(session, number, actor="worker:1")
    fake_robot.delay = 0.02
    other_engine = make_engine(str(engine.url))  # as a second web process would
    now = utcnow()
    try:
        async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
            reports = await asyncio.gather(
                deliver_due(engine, one, settings, now, limiter=RateLimiter()),
                deliver_due(other_engine, two, settings, now, limiter=RateLimiter()),
            )
    finally:
        other_engine.dispose()
    rows = notifications(engine)
    assert len(rows) == 12 and {r.status for r in rows} == {"sent"}
    assert {r.attempts for r in rows} == {1}
    sent = sorted(reports[0].sent + reports[1].sent)
    assert sent == sorted(r.id for r in rows)  # every row by exactly one of them
    assert len(fake_robot.received) == 6
    assert len(fake_wechat_api.sends) == 6
    assert sorted(s["json"]["touser"] for s in fake_wechat_api.sends) == [
        f"oRes{i}" for i in range(6)
    ]
