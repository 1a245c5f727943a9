"""The outbox is written in the transaction of the ticket change it reports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.notify import outbox
from bot.store.db import session_scope
from bot.store.models import Notification, Ticket, utcnow
from bot.tickets import service
from bot.tickets.state import IllegalTransition
from tests.notify.conftest import (
    BASE_URL,
    GRID_KEY,
    OFFICE_KEY,
    RESIDENT,
    notifications,
    open_report,
)


def test_new_ticket_pushes_markdown_naming_the_worker(engine: Engine) -> None:
    number = open_report(engine)
    [row] = notifications(engine)
    assert (row.channel, row.target, row.kind, row.status) == (
        "wecom",
        GRID_KEY,
        "new_ticket",
        "pending",
    )
    assert row.attempts == 0 and row.next_attempt_at is not None
    assert row.payload["msgtype"] == "markdown"
    content = row.payload["markdown"]["content"]
    assert number in content
    assert "供暖供气" in content
    assert "和平新村社区3号楼2单元501" in content
    assert "暖气不热" in content
    assert "王芳" in content and "<@wangfang>" in content
    assert f"({BASE_URL}/tickets/{number})" in content
    with Session(engine) as session:
        due = session.execute(select(Ticket.due_at).where(Ticket.number == number)).scalar_one()
    # The due time as Jinan reads it (UTC+8).
    assert (due + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M") in content
    assert len(content.encode("utf-8")) <= 2048


def test_a_repeated_message_is_not_pushed_twice(engine: Engine) -> None:
    first = open_report(engine, "msg-7")
    again = open_report(engine, "msg-7")
    assert first == again
    assert len(notifications(engine, kind="new_ticket")) == 1
    open_report(engine, "msg-8")
    assert len(notifications(engine, kind="new_ticket")) == 2


def test_no_notice_without_its_change(engine: Engine) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with session_scope(engine) as session:
            service.open_ticket(
                session,
                sender_id=RESIDENT,
                channel="wechat",
                message_id="m-rolled-back",
                category_code="HEATING",
                description="暖气不热",
            )
            raise Boom
    with Session(engine) as session:
        assert session.execute(select(func.count(Ticket.id))).scalar_one() == 0
        assert session.execute(select(func.count(Notification.id))).scalar_one() == 0


def test_illegal_change_writes_no_notice(engine: Engine) -> None:
    number = open_report(engine)
    with session_scope(engine) as session:
        service.cancel_ticket(session, number, RESIDENT)
    before = len(notifications(engine))
    with pytest.raises(IllegalTransition):
        with session_scope(engine) as session:
            service.resolve(session, number, actor="worker:1", note="修好了")
    assert len(notifications(engine)) == before


def test_grid_without_key_gets_no_push_but_the_ticket_opens(engine: Engine) -> None:
    number = open_report(engine, address="和平新村16号楼1单元101")  # HPXC-03, no key
    assert number
    assert notifications(engine, channel="wecom") == []


def test_community_level_ticket_goes_to_the_community_robot(engine: Engine) -> None:
    number = open_report(
        engine, category="CERTIFICATE", description="开居住证明", address="和平新村3号楼"
    )
    [row] = notifications(engine, channel="wecom")
    assert row.target == OFFICE_KEY
    content = row.payload["markdown"]["content"]
    assert number in content and "证明开具" in content
    assert "和平新村社区居委会" in content


def test_content_fits_and_residents_cannot_mention_or_link(engine: Engine) -> None:
    long = "<@all> [点我](http://evil.example) " + "暖气不热" * 600
    open_report(engine, description=long)
    [row] = notifications(engine, channel="wecom")
    content = row.payload["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 2048
    assert "<@all>" not in content and "](http://evil" not in content
    assert "<@wangfang>" in content  # the worker is still mentioned


def test_accept_and_resolve_tell_the_wechat_resident(engine: Engine) -> None:
    number = open_report(engine)
    with session_scope(engine) as session:
        service.accept(session, number, actor="worker:1")
    with session_scope(engine) as session:
        service.resolve(session, number, actor="worker:1", note="已更换阀门，暖气恢复")
    accepted, resolved = notifications(engine, channel="wechat")
    assert (accepted.kind, accepted.target, accepted.status) == ("accepted", RESIDENT, "pending")
    assert "网格员王芳受理" in accepted.payload["text"] and number in accepted.payload["text"]
    assert resolved.kind == "resolved" and resolved.status == "pending"
    text = resolved.payload["text"]
    assert text.startswith("您反映的供暖供气问题已处理：已更换阀门，暖气恢复")
    assert "满意请回复“满意”，不满意请回复“不满意”" in text


def test_other_channels_get_deferred_news_once(engine: Engine) -> None:
    number = open_report(engine, channel="rest", sender_id="tester-1")
    with session_scope(engine) as session:
        service.accept(session, number, actor="worker:1")
        service.resolve(session, number, actor="worker:1", note="修好了")
    rows = notifications(engine, channel="wechat")
    assert [r.status for r in rows] == ["deferred", "deferred"]
    with session_scope(engine) as session:
        texts = outbox.pop_deferred_notices(session, "tester-1")
    # The resolution makes the acceptance moot: only the newest news of a ticket.
    assert len(texts) == 1 and "已处理：修好了" in texts[0]
    assert [r.status for r in notifications(engine, channel="wechat")] == ["sent", "sent"]
    with session_scope(engine) as session:
        assert outbox.pop_deferred_notices(session, "tester-1") == []


def test_old_deferred_news_is_not_given(engine: Engine) -> None:
    number = open_report(engine, channel="rest", sender_id="tester-2")
    with session_scope(engine) as session:
        service.accept(session, number, actor="worker:1", now=utcnow() - timedelta(days=40))
    with session_scope(engine) as session:
        assert outbox.pop_deferred_notices(session, "tester-2") == []


def test_reopen_tells_the_worker(engine: Engine) -> None:
    number = open_report(engine)
    with session_scope(engine) as session:
        service.resolve(session, number, actor="worker:1", note="修好了")
    with session_scope(engine) as session:
        service.reopen(
            session,
            number,
            actor=f"resident:{RESIDENT}",
            reason="居民不满意：还是不热",
            data={"rating": "unsatisfied"},
        )
    [row] = notifications(engine, kind="reopened")
    assert row.channel == "wecom" and row.target == GRID_KEY
    content = row.payload["markdown"]["content"]
    assert "居民不满意，工单已重新打开" in content and "还是不热" in content
    assert "<@wangfang>" in content
    with Session(engine) as session:
        ticket = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert ticket.status == "open"
        assert ticket.events[-1].data["rating"] == "unsatisfied"


def test_open311_requests_tell_no_resident(engine: Engine) -> None:
    number = open_report(engine, "o-1", sender_id="open311:abcd1234", channel="open311")
    with session_scope(engine) as session:
        service.accept(session, number, actor="worker:1:王芳")
        service.resolve(session, number, actor="worker:1:王芳", note="已修好")
    assert notifications(engine, channel="wechat") == []
    assert len(notifications(engine, kind="new_ticket")) == 1  # the worker still hears of it


def test_each_escalation_step_tells_the_next_level_once(engine: Engine) -> None:
    number = open_report(engine, "esc-1")
    with session_scope(engine) as session:
        service.escalate(session, number, actor="system:escalation")
    [row] = notifications(engine, kind="escalated")
    assert row.target == OFFICE_KEY
    assert number in row.payload["markdown"]["content"]
    assert "升级" in row.payload["markdown"]["content"]
    with session_scope(engine) as session:
        service.escalate(session, number, actor="system:escalation")
    assert len(notifications(engine, kind="escalated")) == 2  # community -> street: one more
