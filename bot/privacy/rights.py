"""Residents' own rights in the chat: what is kept about me (我的信息), and
delete it (删除我的信息).

Deleting, for one OpenID and nobody else's: open tickets are withdrawn first
if the resident says so (through the state machine, as any withdrawal), or
kept and left linked so that the handler can still answer; every other ticket
is anonymised (bot.privacy.records); the conversation log and the review
inbox's copies, notices and the remembered address are deleted. Rasa's own
copy of the current conversation is dropped by the tracker store when the
turn is saved (bot.rasa_tracker_store), so nothing comes back afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.privacy import records
from bot.store.models import Notification, Resident, ReviewMessage, Ticket
from bot.tickets import display, service

OPEN_STATUSES = ("open", "accepted", "escalated")


@dataclass(frozen=True)
class OpenTicket:
    number: str
    category_label: str


@dataclass(frozen=True)
class Kept:
    """What is kept about one resident."""

    open_tickets: tuple[OpenTicket, ...]
    other_tickets: int
    messages: int  # their messages in the conversation log
    address: str | None  # the address remembered for them
    notices: int  # notices to them kept (sent, waiting, failed)

    @property
    def nothing(self) -> bool:
        return not (
            self.open_tickets or self.other_tickets or self.messages or self.address or self.notices
        )


@dataclass(frozen=True)
class Erased:
    withdrawn: tuple[str, ...]  # ticket numbers withdrawn
    kept_open: tuple[str, ...]  # open tickets kept (still linked)
    anonymised: int
    notices: int
    review_copies: int
    address: bool


def _valid(sender_id: str) -> str:
    if not sender_id or not sender_id.strip() or records.is_anonymised(sender_id):
        raise ValueError("no resident to speak of")
    return sender_id


def open_tickets(session: Session, sender_id: str) -> list[OpenTicket]:
    rows = session.execute(
        select(Ticket.number, Ticket.category_code)
        .where(Ticket.sender_id == _valid(sender_id), Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.created_at, Ticket.id)
    ).all()
    return [OpenTicket(n, display.category_label(c)) for n, c in rows]


def what_is_kept(session: Session, log: Engine | None, sender_id: str) -> Kept:
    _valid(sender_id)
    open_ = open_tickets(session, sender_id)
    others = session.execute(
        select(func.count(Ticket.id)).where(
            Ticket.sender_id == sender_id, Ticket.status.notin_(OPEN_STATUSES)
        )
    ).scalar()
    resident = session.execute(
        select(Resident).where(Resident.sender_id == sender_id)
    ).scalar_one_or_none()
    address = None
    if resident is not None and (resident.community_id or resident.last_lat is not None):
        place = display.Place(
            community=resident.community.name if resident.community else None,
            building=resident.building,
            unit=resident.unit,
            room=resident.room,
            lat=resident.last_lat,
            lon=resident.last_lon,
        )
        address = display.address_label(place, missing=None)
    notices = session.execute(
        select(func.count(Notification.id)).where(
            Notification.channel == "wechat", Notification.target == sender_id
        )
    ).scalar()
    messages = records.count_log_events(log, sender_id=sender_id, messages_only=True) if log else 0
    return Kept(tuple(open_), int(others or 0), messages, address, int(notices or 0))


def erase(
    session: Session,
    sender_id: str,
    *,
    withdraw_open: bool,
    now: datetime | None = None,
) -> Erased:
    """Forget `sender_id` in the ticket database (see the module docstring), in
    the caller's transaction; then `forget_log` clears the conversation log
    (another database, maybe: only once this transaction is committed)."""
    _valid(sender_id)
    withdrawn, kept_open = [], []
    for line in open_tickets(session, sender_id):
        if withdraw_open:
            service.cancel_ticket(
                session, line.number, sender_id, reason="居民要求删除个人信息，撤销此事", now=now
            )
            withdrawn.append(line.number)
        else:
            kept_open.append(line.number)
    session.flush()
    tickets = (
        session.execute(
            select(Ticket).where(Ticket.sender_id == sender_id, Ticket.number.notin_(kept_open))
        )
        .scalars()
        .all()
    )
    for ticket in tickets:
        records.anonymise_ticket(session, ticket)
    notice_ids = (
        session.execute(
            select(Notification.id).where(
                Notification.channel == "wechat",
                Notification.target == sender_id,
                # news about a kept ticket still has to reach the resident
                Notification.ticket_id.notin_(select(Ticket.id).where(Ticket.number.in_(kept_open)))
                | Notification.ticket_id.is_(None),
            )
        )
        .scalars()
        .all()
    )
    notices = records.delete_notices(session, notice_ids)
    review_ids = (
        session.execute(select(ReviewMessage.id).where(ReviewMessage.sender_id == sender_id))
        .scalars()
        .all()
    )
    review_copies = records.delete_review_messages(session, review_ids)
    resident_ids = (
        session.execute(select(Resident.id).where(Resident.sender_id == sender_id)).scalars().all()
    )
    address = records.delete_residents(session, resident_ids) > 0
    session.flush()
    return Erased(
        withdrawn=tuple(withdrawn),
        kept_open=tuple(kept_open),
        anonymised=len(tickets),
        notices=notices,
        review_copies=review_copies,
        address=address,
    )


def forget_log(log: Engine | None, sender_id: str) -> int:
    """Delete the resident's rows of the conversation log; how many."""
    _valid(sender_id)
    deleted = 0
    if log is not None:
        while ids := records.log_event_ids(log, sender_id=sender_id, limit=1000):
            deleted += records.delete_log_events(log, ids)
    return deleted
