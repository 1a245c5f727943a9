"""A resident's own tickets: what the "my reports" page shows and lets them do.

Plain functions on a Session (the web app runs them in a thread). A resident is
their OpenID (the tickets' sender_id); another resident's ticket is the same as
no ticket. Every change goes through bot.tickets.service (and so the state
machine and the event log); every word comes from bot.tickets.display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.store.models import Ticket
from bot.tickets import display, photos, service
from bot.tickets.state import Action, can

PAGE_LIMIT = 50
MAX_REASON = 500
ACTIONS = ("cancel", "satisfied", "unsatisfied", "reopen")


class NotYours(LookupError):
    """No ticket of this number belongs to this resident."""


@dataclass(frozen=True)
class HistoryLine:
    label: str
    who: str
    at: str
    note: str | None


@dataclass(frozen=True)
class ActionButton:
    action: str
    label: str


@dataclass
class MyTicket:
    number: str
    category: str
    status: str
    status_label: str
    description: str
    address: str
    handler: str
    created: str
    due: str
    history: list[HistoryLine] = field(default_factory=list)
    worker_notes: list[HistoryLine] = field(default_factory=list)
    photos: list[str] = field(default_factory=list)
    actions: list[ActionButton] = field(default_factory=list)


def _is_link(value: str) -> bool:
    return value.startswith(("https://", "http://", "/"))


def photo_links(ticket: Ticket) -> list[str]:
    """Addresses of the ticket's photos a browser can load."""
    return [p for p in (str(x) for x in (ticket.photos or [])) if _is_link(p)]


def available_actions(status: str) -> list[ActionButton]:
    """The buttons for a ticket in `status` (only what the state machine allows)."""
    names: list[str] = []
    if can(status, Action.CANCEL):
        names.append("cancel")
    if can(status, Action.CLOSE) and can(status, Action.REOPEN):
        names += ["satisfied", "unsatisfied", "reopen"]
    return [ActionButton(name, display.resident_action_label(name)) for name in names]


def _when(value: datetime | None) -> str:
    return display.resident_time(value) if value is not None else ""


def my_tickets(session: Session, openid: str, limit: int = PAGE_LIMIT) -> list[MyTicket]:
    """The resident's tickets, newest first, with history, notes, photos and buttons."""
    tickets = (
        session.execute(
            select(Ticket)
            .where(Ticket.sender_id == openid)
            .options(selectinload(Ticket.events))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    out = []
    for ticket in tickets:
        history = [
            HistoryLine(
                label=display.event_label(e.type),
                who=display.actor_label(e.actor),
                at=_when(e.at),
                note=e.note,
            )
            for e in ticket.events
        ]
        notes = [
            line
            for line, e in zip(history, ticket.events, strict=True)
            if e.note and e.actor.startswith("worker:")
        ]
        out.append(
            MyTicket(
                number=ticket.number,
                category=display.category_label(ticket.category_code),
                status=ticket.status,
                status_label=display.status_label(ticket.status),
                description=ticket.description,
                address=display.address_of(ticket),
                handler=display.handler_of(ticket),
                created=_when(ticket.created_at),
                due=display.due_text(ticket.due_at) if can(ticket.status, Action.RESOLVE) else "",
                history=history,
                worker_notes=notes,
                photos=photo_links(ticket)
                + [
                    f"/me/tickets/{ticket.number}/photos/{p.id}"
                    for p in photos.photos_of(session, ticket)
                ],
                actions=available_actions(ticket.status),
            )
        )
    return out


def act(
    session: Session,
    openid: str,
    number: str,
    action: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Do `action` on the resident's own ticket `number` (not committed).

    NotYours for someone else's (or no) ticket; IllegalTransition when the
    ticket's status does not allow it (it changed meanwhile, or a forged form).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    ticket = service.get_ticket(session, number)
    if ticket is None or ticket.sender_id != openid:
        raise NotYours(number)
    actor = f"resident:{openid}"
    words = (reason or "").strip()[:MAX_REASON] or None
    if action == "cancel":
        return service.cancel_ticket(session, number, openid, reason=words, now=now)
    if action == "satisfied":
        note = "居民满意" + (f"：{words}" if words else "")
        return service.close(
            session, ticket, actor=actor, note=note, data={"rating": "satisfied"}, now=now
        )
    if action == "unsatisfied":
        note = "居民不满意" + (f"：{words}" if words else "")
        return service.reopen(
            session, ticket, actor=actor, reason=note, data={"rating": "unsatisfied"}, now=now
        )
    return service.reopen(session, ticket, actor=actor, reason=words or "居民重新打开", now=now)
