"""The same fault reported by many: linked, shown with the reason, resolved together."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.store.db import session_scope
from bot.store.models import Incident, Notification, Ticket
from bot.tickets import incidents, service
from tests.helpers import NOW, located, new_ticket

ADDRESS = "和平新村3号楼2单元501"
NEIGHBOUR = "和平新村3号楼1单元202"
OTHER_BUILDING = "和平新村5号楼1单元101"


class Admin:
    id, role, community_id = 1, "admin", None


def report(engine, where, sender, category="HEATING", at=NOW, message=None) -> str:
    with session_scope(engine) as session:
        return new_ticket(
            session,
            message_id=message or f"m-{sender}-{at.timestamp()}",
            sender_id=sender,
            category=category,
            location=located(session, where),
            now=at,
        ).number


def incident_id(engine, number):
    with session_scope(engine, readonly=True) as session:
        return service.get_ticket(session, number).incident_id


def test_reports_of_one_building_and_category_in_the_window_are_one_incident(demo_engine):
    first = report(demo_engine, ADDRESS, "oA")
    assert incident_id(demo_engine, first) is None  # alone: nothing to link
    second = report(demo_engine, NEIGHBOUR, "oB", at=NOW + timedelta(hours=3))
    third = report(demo_engine, NEIGHBOUR, "oC", at=NOW + timedelta(hours=5))
    linked = {incident_id(demo_engine, n) for n in (first, second, third)}
    assert len(linked) == 1 and None not in linked
    with session_scope(demo_engine, readonly=True) as session:
        [incident] = session.execute(select(Incident)).scalars().all()
        assert "3号楼" in incident.reason and "3位居民" in incident.reason
        assert "供暖供气" in incident.reason and "24小时" in incident.reason
        ticket = service.get_ticket(session, second)
        view = incidents.incident_of(session, ticket)
        assert view.reporters == 3 and [t.number for t in view.tickets] == [first, third]
        assert incidents.neighbours_reporting(session, ticket) == 2
        assert any("同一故障" in (e.note or "") for e in ticket.events)


def test_other_buildings_categories_old_or_done_reports_stay_apart(demo_engine):
    first = report(demo_engine, ADDRESS, "oA")
    others = [
        report(demo_engine, OTHER_BUILDING, "oB"),  # another building
        report(demo_engine, NEIGHBOUR, "oC", category="PETS"),  # no window for pets
    ]
    late = report(demo_engine, NEIGHBOUR, "oD", at=NOW + timedelta(hours=25))  # too late
    for number in [first, *others, late]:
        assert incident_id(demo_engine, number) is None
    with session_scope(demo_engine) as session:
        service.resolve(
            session, late, actor="worker:1", note="修好了", now=NOW + timedelta(hours=25)
        )
    after = report(demo_engine, NEIGHBOUR, "oE", at=NOW + timedelta(hours=26))
    assert incident_id(demo_engine, after) is None  # the last one is no longer in hand


def test_one_action_resolves_all_and_every_reporter_hears_back(demo_engine):
    numbers = [
        report(demo_engine, ADDRESS, "oA"),
        report(demo_engine, NEIGHBOUR, "oB", at=NOW + timedelta(hours=1)),
        report(demo_engine, NEIGHBOUR, "oC", at=NOW + timedelta(hours=2)),
    ]
    with session_scope(demo_engine) as session:
        service.accept(session, numbers[1], actor="worker:1", now=NOW + timedelta(hours=2))
        ticket = service.get_ticket(session, numbers[0])
        done = incidents.resolve_incident(
            session, ticket, "worker:1", "换了总阀门", lambda t: True, now=NOW + timedelta(hours=3)
        )
    assert sorted(done) == sorted(numbers)
    with session_scope(demo_engine, readonly=True) as session:
        statuses = session.execute(select(Ticket.status)).scalars().all()
        assert set(statuses) == {"resolved"}
        told = session.execute(
            select(Notification.target).where(
                Notification.channel == "wechat", Notification.kind == "resolved"
            )
        ).scalars()
        assert sorted(told) == ["oA", "oB", "oC"]


def test_a_ticket_the_worker_may_not_see_is_left_alone(demo_engine):
    numbers = [report(demo_engine, ADDRESS, "oA"), report(demo_engine, NEIGHBOUR, "oB")]
    with session_scope(demo_engine) as session:
        ticket = service.get_ticket(session, numbers[0])
        done = incidents.resolve_incident(
            session, ticket, "worker:1", "修好了", lambda t: t.number == numbers[0], now=NOW
        )
    assert done == [numbers[0]]
