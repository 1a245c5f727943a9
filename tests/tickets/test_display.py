"""What people read about a ticket: one wording, the same for residents and staff."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from bot import frontdesk, simulator
from bot.accounts import CurrentWorker
from bot.open311.requests import get_request
from bot.routing.locator import Located
from bot.store.db import session_scope
from bot.tickets import display, queries, service
from bot.tickets.state import IllegalTransition, Status
from tests.helpers import NOW, located, new_ticket


def test_every_status_has_one_label():
    assert set(display.STATUS_LABELS) == {s.value for s in Status}
    assert len(set(display.STATUS_LABELS.values())) == len(Status)
    # str-Enum members and their values read the same
    assert display.status_label(Status.RESOLVED) == display.status_label("resolved")
    assert "已处理，待确认" in str(IllegalTransition("resolved", "accept"))


def test_the_resident_and_the_worker_read_the_same_status(demo_engine, monkeypatch):
    monkeypatch.setattr(frontdesk, "session_scope", lambda **kw: session_scope(demo_engine, **kw))
    with session_scope(demo_engine) as s:
        number = new_ticket(s, location=located(s, "和平新村3号楼2单元501")).number
        service.accept(s, number, "worker:1:王芳", note="明天上门")

    [told] = frontdesk.open_tickets("wx-user-1")
    with session_scope(demo_engine, readonly=True) as s:
        [shown] = simulator.resident_tickets(s, "wx-user-1")
        admin = CurrentWorker(id=0, name="管理员", phone="admin", role="admin")
        [row] = queries.inbox(s, admin, "all").rows
        [request] = get_request(s, number)
    assert told.status_label == shown["status_label"] == row.status_label == "处理中"
    assert request["status"] == "open"
    # who has it, and where, in the same words too
    assert shown["handler"] == request["agency_responsible"] == "网格员王芳"
    assert row.address == "和平新村社区3号楼2单元501室"
    assert request["address"] == "和平新村社区3号楼"  # public: community and building only


@pytest.mark.parametrize(
    ("place", "label"),
    [
        (display.Place("和平新村社区", 3, "2", "501"), "和平新村社区3号楼2单元501室"),
        (display.Place("和平新村社区", 12, "东", "301室"), "和平新村社区12号楼东单元301室"),
        (display.Place("和平新村社区", 3), "和平新村社区3号楼"),
        (display.Place("和平新村社区", words="和平新村"), "和平新村社区"),
        (display.Place("和平新村社区", words="东门口的路灯"), "和平新村社区（东门口的路灯）"),
        (display.Place(words="火星基地1号"), "火星基地1号"),
        (display.Place(lat=36.66123456, lon=117.03), "位置（36.66123, 117.03000）"),
        (display.Place(), "未提供地址"),
    ],
)
def test_address_labels(place, label):
    assert display.address_label(place) == label


def test_public_addresses_leave_out_the_room_and_the_words_beside_a_community():
    assert (
        display.address_label(display.Place("裕园社区", 5, "1", "301"), with_room=False)
        == "裕园社区5号楼1单元"
    )
    assert (
        display.address_label(display.Place("裕园社区", words="俺家501"), with_room=False)
        == "裕园社区"
    )
    assert display.address_label(display.Place(), with_room=False, missing=None) is None


def test_a_located_resident_is_read_back_as_staff_read_the_ticket(demo_session: Session):
    where = located(demo_session, "和平新村三号楼2单元501")
    ticket = new_ticket(demo_session, location=where)
    assert frontdesk.address_label(where) == display.address_of(ticket)
    point = Located(community="和平新村社区", grid="HPXC-01", level="grid", lat=36.6, lon=117.0)
    assert frontdesk.address_label(point) == "和平新村社区"


def test_offices_and_their_fallbacks():
    assert display.office_label("community", "裕园社区") == "裕园社区居委会"
    assert display.office_label("community", "裕园社区", "裕园社区服务站") == "裕园社区服务站"
    assert display.office_label("community") == "社区居委会"
    assert display.office_label("street", "裕园社区", None, "营市街街道") == "营市街街道"
    assert display.office_label("street") == "街道办事处"
    assert display.handler_label("王芳", "grid_worker", "x") == "网格员王芳"
    assert display.handler_label("周敏", "community_staff", "x") == "社区工作人员周敏"
    assert display.handler_label(None, None, "裕园社区居委会") == "裕园社区居委会"


def test_escalation_names_the_office_of_the_next_level(demo_session: Session):
    ticket = new_ticket(demo_session, location=located(demo_session, "裕园5号楼"))
    step = service.escalate(demo_session, ticket, "system:escalation", now=NOW)
    assert step.reason == "超过办理时限，由网格升级至裕园社区居委会"
    assert display.handler_of(ticket) == "裕园社区居委会"


def test_people_in_a_tickets_history():
    assert display.actor_label("worker:3:王芳") == "王芳"
    assert display.actor_label("worker:3") == "工作人员3"
    assert display.actor_label("resident:oX") == "居民"
    assert display.actor_label("system:escalation") == "系统（超时升级）"
    assert display.actor_label("open311:ab12") == "外部系统"
    assert display.resident_subject("complaint", "供暖供气") == "您反映的供暖供气问题"
    assert display.resident_subject("service", "证明开具") == "您申请办理的证明开具事项"


def test_times_for_residents_and_for_staff():
    due = datetime(2026, 11, 28, 2, 30, tzinfo=timezone.utc)  # 10:30 in Jinan
    assert display.due_text(due, "Asia/Shanghai") == "11月28日10:30"
    assert display.due_text(None) == "尽快"
    assert display.staff_time(due, "Asia/Shanghai") == "2026-11-28 10:30"
    assert display.deadline_text(None) == "未设定"
    assert display.overdue_text(timedelta(hours=-5, minutes=-12)) == "已超时5小时12分"
    assert display.remaining_text(timedelta(days=2, hours=3)) == "剩余2天3小时"
