"""The same fault reported by many: tickets linked to one incident.

When a ticket opens, reports of the same category in the same building made
within the category's window (`incident_window_hours` in data/taxonomy.yml; 0 or
absent: never grouped) and still in hand are linked to one incident, with the
reason written on it ("3号楼24小时内3位居民反映供暖供气"). Each report stays a
ticket of its own (its reporter, number, history and news); the incident only
links them. The worker's ticket page shows the neighbours' reports and the
reason, and resolving the incident resolves every ticket still in hand through
the state machine, so every reporter hears back (bot.notify). A resident is told
when neighbours reported it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.store.models import Incident, Ticket, aware
from bot.taxonomy import Taxonomy, get_taxonomy
from bot.tickets import display
from bot.tickets.state import IN_PROGRESS, Action, can, record

IN_HAND = tuple(status.value for status in IN_PROGRESS)


def _reason(ticket: Ticket, hours: int, reporters: int) -> str:
    return display.incident_reason(
        display.place_of(ticket), display.category_label(ticket.category_code), hours, reporters
    )


def link_new_ticket(
    session: Session,
    ticket: Ticket,
    now: datetime | None = None,
    taxonomy: Taxonomy | None = None,
) -> Incident | None:
    """Link a just-opened ticket with the same fault's other reports, if any.

    Called by the ticket service in the transaction that opens the ticket.
    """
    category = (taxonomy or get_taxonomy()).by_code(ticket.category_code)
    hours = category.incident_window_hours if category is not None else 0
    if not hours or ticket.community_id is None or ticket.building is None:
        return None
    now = aware(now)
    since = now - timedelta(hours=hours)
    others = (
        session.execute(
            select(Ticket)
            .where(
                Ticket.id != ticket.id,
                Ticket.category_code == ticket.category_code,
                Ticket.community_id == ticket.community_id,
                Ticket.building == ticket.building,
                Ticket.created_at >= since,
                Ticket.status.in_(IN_HAND),
            )
            .order_by(Ticket.created_at, Ticket.id)
        )
        .scalars()
        .all()
    )
    if not others:
        return None
    incident = next(
        (session.get(Incident, t.incident_id) for t in others if t.incident_id is not None),
        None,
    )
    if incident is None:
        incident = Incident(
            category_code=ticket.category_code,
            community_id=ticket.community_id,
            building=ticket.building,
            window_hours=hours,
            reason="",
            created_at=now,
            updated_at=now,
        )
        session.add(incident)
        session.flush()
    linked = [t for t in others if t.incident_id is None] + [ticket]
    for each in linked:
        each.incident_id = incident.id
    session.flush()
    reporters = _reporters(session, incident.id)
    incident.reason = _reason(ticket, hours, reporters)
    incident.updated_at = now
    for each in linked:
        record(
            each,
            "note",
            actor="system",
            note=display.incident_note(incident.reason),
            data={"incident": incident.id},
            now=now,
        )
    session.flush()
    return incident


def _reporters(session: Session, incident_id: int) -> int:
    return int(
        session.execute(
            select(func.count(func.distinct(Ticket.sender_id))).where(
                Ticket.incident_id == incident_id
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class Neighbour:
    number: str
    status_label: str
    created_at: datetime
    description: str


@dataclass(frozen=True)
class IncidentView:
    id: int
    reason: str
    reporters: int
    tickets: list[Neighbour]  # the other reports, oldest first
    in_hand: int  # reports not yet resolved (this one included)


def incident_of(session: Session, ticket: Ticket) -> IncidentView | None:
    """The incident a ticket belongs to, as the worker's page shows it."""
    if ticket.incident_id is None:
        return None
    incident = session.get(Incident, ticket.incident_id)
    if incident is None:
        return None
    rows = (
        session.execute(
            select(Ticket)
            .where(Ticket.incident_id == incident.id)
            .order_by(Ticket.created_at, Ticket.id)
        )
        .scalars()
        .all()
    )
    return IncidentView(
        id=incident.id,
        reason=incident.reason,
        reporters=len({t.sender_id for t in rows}),
        tickets=[
            Neighbour(t.number, display.status_label(t.status), t.created_at, t.description)
            for t in rows
            if t.id != ticket.id
        ],
        in_hand=sum(1 for t in rows if t.status in IN_HAND),
    )


def neighbours_reporting(session: Session, ticket: Ticket) -> int:
    """How many other residents reported the same fault (0: none, or not linked)."""
    if ticket.incident_id is None:
        return 0
    return max(_reporters(session, ticket.incident_id) - 1, 0)


def resolve_incident(
    session: Session,
    ticket: Ticket,
    actor: str,
    note: str,
    may_resolve: callable,  # type: ignore[valid-type]
    now: datetime | None = None,
) -> list[str]:
    """Resolve every report of the ticket's incident still in hand (the state machine
    and the outbox per ticket: each reporter hears back). `may_resolve(ticket)` says
    whether the worker may act on a linked ticket (visibility); returns the numbers
    resolved."""
    from bot.tickets import service

    if ticket.incident_id is None:
        return []
    rows = (
        session.execute(
            select(Ticket)
            .where(Ticket.incident_id == ticket.incident_id, Ticket.status.in_(IN_HAND))
            .order_by(Ticket.created_at, Ticket.id)
        )
        .scalars()
        .all()
    )
    done = []
    for each in rows:
        if not may_resolve(each) or not can(each.status, Action.RESOLVE):
            continue
        service.resolve(session, each, actor, note=note, now=now)
        done.append(each.number)
    return done
