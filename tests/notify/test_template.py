"""News after WeChat's 48-hour window: a template message when one is configured."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy.engine import Engine

from bot.notify import outbox, template
from bot.notify.sender import deliver_due
from bot.notify.wecom import RateLimiter
from bot.settings import Settings
from bot.store.db import session_scope
from bot.store.models import utcnow
from bot.tickets import service
from tests.fakes import FakeWeChatApi
from tests.notify.conftest import BASE_URL, RESIDENT, FakeRobot, notifications, open_report

TEMPLATE_ID = "TPL-ticket-update-1"


@pytest.fixture
def with_template(settings: Settings) -> Settings:
    return replace(settings, wechat_template_ticket_update=TEMPLATE_ID)


def resolve(engine: Engine, note: str = "已更换阀门，暖气恢复正常") -> str:
    number = open_report(engine)
    with session_scope(engine) as session:
        service.resolve(session, number, actor="worker:1", note=note)
    return number


async def test_within_the_window_a_customer_service_message_goes_out(
    engine: Engine,
    settings: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    resolve(engine)
    now = utcnow()
    await deliver_due(
        engine,
        http,
        replace(settings, wechat_template_ticket_update=TEMPLATE_ID),
        now,
        limiter=RateLimiter(),
        last_message_at=lambda openid: now - timedelta(hours=47),
    )
    [row] = notifications(engine, channel="wechat")
    assert row.status == "sent" and row.delivered_via == outbox.VIA_CUSTOMER_SERVICE
    assert len(fake_wechat_api.sends) == 1 and fake_wechat_api.templates == []


async def test_outside_the_window_a_template_message_goes_out(
    engine: Engine,
    with_template: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    number = resolve(engine, "已更换阀门，暖气恢复正常，屋里二十度了，请您查看是否满意")
    now = utcnow()
    report = await deliver_due(
        engine,
        http,
        with_template,
        now,
        limiter=RateLimiter(),
        last_message_at=lambda openid: now - timedelta(hours=49),
    )
    [row] = notifications(engine, channel="wechat")
    assert row.id in report.sent
    assert row.status == "sent" and row.delivered_via == outbox.VIA_TEMPLATE
    assert fake_wechat_api.sends == []  # the customer-service API was not even tried
    [sent] = fake_wechat_api.templates
    assert sent["touser"] == RESIDENT and sent["template_id"] == TEMPLATE_ID
    assert sent["url"] == f"{BASE_URL}/me?ticket={number}"
    data = {k: v["value"] for k, v in sent["data"].items()}
    assert data["thing1"] == "供暖供气" and data["character_string2"] == number
    assert data["phrase3"] == "已处理"  # 已处理，待确认 in at most 5 characters
    assert len(data["thing4"]) == 20 and data["thing4"].endswith("…")  # WeChat's limit
    assert data["time5"].startswith(str(now.year))


async def test_wechat_saying_45015_also_turns_to_the_template(
    engine: Engine,
    with_template: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    resolve(engine)
    fake_wechat_api.send_errcodes = [45015]
    await deliver_due(engine, http, with_template, utcnow(), limiter=RateLimiter())
    [row] = notifications(engine, channel="wechat")
    assert row.status == "sent" and row.delivered_via == outbox.VIA_TEMPLATE
    assert len(fake_wechat_api.templates) == 1


async def test_without_a_template_the_news_waits_for_the_next_message(
    engine: Engine,
    settings: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    resolve(engine)
    now = utcnow()
    await deliver_due(
        engine,
        http,
        settings,
        now,
        limiter=RateLimiter(),
        last_message_at=lambda openid: now - timedelta(days=3),
    )
    [row] = notifications(engine, channel="wechat")
    assert row.status == "deferred" and "no template" in row.last_error
    assert fake_wechat_api.sends == [] and fake_wechat_api.templates == []
    with session_scope(engine) as session:
        [text] = outbox.pop_deferred_notices(session, RESIDENT)
    assert "已更换阀门" in text
    [row] = notifications(engine, channel="wechat")
    assert row.status == "sent" and row.delivered_via == outbox.VIA_NEXT_MESSAGE


@pytest.mark.parametrize(
    ("errcode", "status"),
    [(43004, "deferred"), (40037, "deferred"), (-1, "pending")],  # -1: WeChat busy, retry
)
async def test_template_refusals(
    engine: Engine,
    with_template: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
    errcode: int,
    status: str,
) -> None:
    resolve(engine)
    fake_wechat_api.send_errcodes = [45015]
    fake_wechat_api.template_errcodes = [errcode]
    await deliver_due(engine, http, with_template, utcnow(), limiter=RateLimiter())
    [row] = notifications(engine, channel="wechat")
    assert row.status == status and str(errcode) in row.last_error
    assert row.delivered_via is None


async def test_a_broken_field_setting_defers_instead_of_failing(
    engine: Engine,
    with_template: Settings,
    http: aiohttp.ClientSession,
    fake_wechat_api: FakeWeChatApi,
    fake_robot: FakeRobot,
) -> None:
    resolve(engine)
    fake_wechat_api.send_errcodes = [45015]
    broken = replace(with_template, wechat_template_fields="thing1=password")
    await deliver_due(engine, http, broken, utcnow(), limiter=RateLimiter())
    [row] = notifications(engine, channel="wechat")
    assert row.status == "deferred" and "WECHAT_TEMPLATE_FIELDS" in row.last_error
    assert fake_wechat_api.templates == []


@pytest.mark.parametrize("spec", ["", "thing1", "thing1=secret", "=category", ",,"])
def test_field_settings_are_checked(spec: str) -> None:
    with pytest.raises(template.TemplateConfigError):
        template.field_map(spec)


def test_links_and_cuts(settings: Settings) -> None:
    assert template.field_map(" thing1 = category , time2=time ") == [
        ("thing1", "category"),
        ("time2", "time"),
    ]
    absolute = replace(settings, wechat_template_link="https://m.example.cn/t/{number}")
    assert (
        template.template_link(absolute, "20261206-0001") == "https://m.example.cn/t/20261206-0001"
    )
    data = template.template_data(
        {"number": "x" * 40, "status": "已上报上级部门"}, "character_string1=number,phrase2=status"
    )
    assert len(data["character_string1"]) == 32 and data["phrase2"] == "已上报上…"
