"""The ticket state machine: every legal transition, illegal ones, the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.store.models import Ticket, TicketEvent, UnauditedChange
from bot.tickets.state import (
    EVENT_TYPE,
    TRANSITIONS,
    Action,
    IllegalTransition,
    Status,
    next_status,
    transition,
)
from tests.helpers import NOW, new_ticket

# How to bring a fresh (open) ticket into each status.
PATHS: dict[Status, list[Action]] = {
    Status.OPEN: [],
    Status.ACCEPTED: [Action.ACCEPT],
    Status.ESCALATED: [Action.ESCALATE],
    Status.RESOLVED: [Action.RESOLVE],
    Status.CLOSED: [Action.RESOLVE, Action.CLOSE],
    Status.CANCELLED: [Action.CANCEL],
}

ILLEGAL = [(s, a) for s in Status for a in Action if (s, a) not in TRANSITIONS]


def _ticket_in(session, status: Status) -> Ticket:
    ticket = new_ticket(session)
    for i, action in enumerate(PATHS[status]):
        transition(ticket, action, actor="test", now=NOW + timedelta(minutes=i + 1))
    session.commit()
    assert ticket.status == status.value
    return ticket


def _event_count(session, ticket: Ticket) -> int:
    return session.execute(
        select(func.count(TicketEvent.id)).where(TicketEvent.ticket_id == ticket.id)
    ).scalar_one()


def test_table_covers_the_documented_transitions() -> None:
    # Closed and cancelled are final; resolved only closes or reopens.
    assert not [k for k in TRANSITIONS if k[0] in (Status.CLOSED, Status.CANCELLED)]
    assert {a for (s, a) in TRANSITIONS if s is Status.RESOLVED} == {Action.CLOSE, Action.REOPEN}
    assert len(TRANSITIONS) == 16
    assert next_status("resolved", "reopen") is Status.OPEN


@pytest.mark.parametrize(("status", "action"), sorted(TRANSITIONS, key=str))
def test_every_legal_transition_changes_status_and_appends_event(
    session, status: Status, action: Action
) -> None:
    ticket = _ticket_in(session, status)
    before = _event_count(session, ticket)
    event = transition(ticket, action, actor="worker:1", note="ok", now=NOW + timedelta(hours=1))
    session.commit()

    session.expire_all()
    stored = session.get(Ticket, ticket.id)
    assert stored.status == TRANSITIONS[(status, action)].value
    assert _event_count(session, stored) == before + 1
    last = stored.events[-1]
    assert last.id == event.id
    assert last.type == EVENT_TYPE[action]
    assert last.data["from"] == status.value
    assert last.data["to"] == stored.status
    assert last.actor == "worker:1"


@pytest.mark.parametrize(
    ("status", "action"), ILLEGAL, ids=[f"{s.value}-{a.value}" for s, a in ILLEGAL]
)
def test_illegal_transition_raises_and_changes_nothing(
    session, status: Status, action: Action
) -> None:
    ticket = _ticket_in(session, status)
    before = _event_count(session, ticket)
    with pytest.raises(IllegalTransition) as info:
        transition(ticket, action, actor="worker:1")
    message = str(info.value)
    assert ticket.number in message
    assert "不能" in message and "cannot" in message
    session.commit()
    session.expire_all()
    assert session.get(Ticket, ticket.id).status == status.value
    assert _event_count(session, ticket) == before


def test_escalating_beyond_street_is_illegal(session) -> None:
    ticket = new_ticket(session)
    transition(ticket, Action.ESCALATE, actor="system")
    ticket.level = "street"
    with pytest.raises(IllegalTransition, match="街道"):
        transition(ticket, Action.ESCALATE, actor="system")


def test_status_set_directly_is_refused_at_flush(session) -> None:
    ticket = new_ticket(session)
    session.commit()
    ticket.status = "closed"
    with pytest.raises(UnauditedChange):
        session.flush()
    session.rollback()
    assert session.get(Ticket, ticket.id).status == "open"


def test_events_are_append_only_and_tickets_never_deleted(session) -> None:
    ticket = new_ticket(session)
    session.commit()
    event = ticket.events[0]
    event.note = "rewritten history"
    with pytest.raises(UnauditedChange):
        session.flush()
    session.rollback()
    session.delete(ticket)
    with pytest.raises(UnauditedChange):
        session.flush()
    session.rollback()


def test_illegal_transition_message_in_both_languages() -> None:
    err = IllegalTransition("closed", "accept", "20261127-0001")
    assert str(err) == (
        "工单20261127-0001当前状态为“已办结”，不能“受理”。 / "
        "ticket 20261127-0001 is closed; cannot accept."
    )
