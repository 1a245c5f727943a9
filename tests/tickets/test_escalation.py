"""Overdue tickets go grid -> community -> street, each step once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.store.db import session_scope
from bot.store.models import TicketEvent
from bot.tickets.service import (
    accept,
    cancel_ticket,
    escalate,
    escalate_overdue,
    get_ticket,
    resolve,
)
from bot.tickets.state import IllegalTransition
from tests.helpers import NOW, located, new_ticket

HEATING_SLA = timedelta(hours=24)


def _escalations(session) -> int:
    return session.execute(
        select(func.count()).select_from(TicketEvent).where(TicketEvent.type == "escalated")
    ).scalar_one()


def test_overdue_ticket_climbs_once_per_level(demo_session) -> None:
    s = demo_session
    ticket = new_ticket(s, location=located(s, "和平新村3号楼"))
    s.commit()
    assert ticket.level == "grid" and ticket.assignee is not None

    assert escalate_overdue(s, NOW + HEATING_SLA - timedelta(minutes=1)) == []

    t1 = NOW + HEATING_SLA + timedelta(minutes=1)
    [first] = escalate_overdue(s, t1)
    s.commit()
    assert (first.number, first.from_level, first.to_level) == (ticket.number, "grid", "community")
    assert "和平新村社区居委会" in first.reason
    assert ticket.status == "escalated" and ticket.level == "community"
    assert ticket.assignee is None and ticket.grid.code == "HPXC-01"  # grid stays recorded
    assert ticket.due_at == t1 + HEATING_SLA

    # Running again (the job runs every few minutes) repeats nothing.
    assert escalate_overdue(s, t1) == []
    assert escalate_overdue(s, t1 + timedelta(hours=23)) == []

    t2 = t1 + HEATING_SLA + timedelta(minutes=1)
    [second] = escalate_overdue(s, t2)
    s.commit()
    assert (second.from_level, second.to_level) == ("community", "street")
    assert "建筑新村街道办事处" in second.reason
    assert ticket.level == "street"

    # The street is the top: never escalated further.
    assert escalate_overdue(s, t2 + timedelta(days=30)) == []
    s.commit()
    assert _escalations(s) == 2
    events = [e for e in ticket.events if e.type == "escalated"]
    assert [(e.data["from_level"], e.data["to_level"]) for e in events] == [
        ("grid", "community"),
        ("community", "street"),
    ]


def test_only_unfinished_tickets_are_escalated(demo_session) -> None:
    s = demo_session
    where = located(s, "裕园3号楼")
    waiting = new_ticket(s, "a", location=where)
    taken = new_ticket(s, "b", location=where)
    done = new_ticket(s, "c", location=where)
    withdrawn = new_ticket(s, "d", location=where)
    accept(s, taken, "worker:5")
    resolve(s, done, "worker:5", "已处理")
    cancel_ticket(s, withdrawn.number, withdrawn.sender_id)
    s.commit()
    escalated = escalate_overdue(s, NOW + timedelta(days=2))
    s.commit()
    assert sorted(e.number for e in escalated) == sorted([waiting.number, taken.number])
    assert done.status == "resolved" and withdrawn.status == "cancelled"


def test_escalated_ticket_can_be_accepted_and_resolved(demo_session) -> None:
    s = demo_session
    ticket = new_ticket(s, location=located(s, "和平新村3号楼"))
    escalate_overdue(s, NOW + timedelta(days=2))
    accept(s, ticket.number, "staff:和平新村", note="社区已接手")
    resolve(s, ticket.number, "staff:和平新村", note="已协调供热公司")
    s.commit()
    assert ticket.status == "resolved" and ticket.level == "community"


def test_manual_escalation_and_street_limit(demo_session) -> None:
    s = demo_session
    ticket = new_ticket(s, location=located(s, "和平新村3号楼"))
    e1 = escalate(s, ticket, "worker:1", reason="需要社区协调")
    e2 = escalate(s, ticket.number, "staff:1")
    assert (e1.to_level, e2.to_level) == ("community", "street")
    with pytest.raises(IllegalTransition):
        escalate(s, ticket, "staff:1")
    s.commit()
    assert get_ticket(s, ticket.number).level == "street"


def test_concurrent_escalation_runs_do_each_step_once(demo_engine) -> None:
    with session_scope(demo_engine) as s:
        for i in range(5):
            new_ticket(s, f"m{i}", location=located(s, "和平新村3号楼"))
    runs = 4
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(runs)

    def run() -> None:
        try:
            start.wait()
            with session_scope(demo_engine) as s:
                results.append(len(escalate_overdue(s, NOW + timedelta(days=2))))
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=run) for _ in range(runs)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert sum(results) == 5
    with session_scope(demo_engine) as s:
        assert _escalations(s) == 5
