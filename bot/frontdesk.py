"""What the assistant's custom actions ask of the domain core, in one place.

Each function is one unit of work in its own transaction, takes and returns
plain values (no ORM objects leak out) and turns a database that is locked or
down into `StoreUnavailable`, so that an action can tell the resident to try
again while nothing half-written remains.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from bot.nlu.normalise import normalise
from bot.routing.locator import Located, Locator, get_locator
from bot.store.db import session_scope
from bot.store.models import Ticket, TicketEvent, aware
from bot.taxonomy import Category, get_taxonomy
from bot.tickets import display, incidents, service
from bot.tickets.photos import StoredPhoto, attach_stored
from bot.tickets.state import IllegalTransition


class StoreUnavailable(RuntimeError):
    """The ticket database could not be reached or stayed locked."""


class NotCancellable(LookupError):
    """No such ticket of this resident's, or it is already done."""


@contextmanager
def _transaction(readonly: bool = False) -> Iterator[Session]:
    try:
        with session_scope(readonly=readonly) as session:
            yield session
    except (OperationalError, DBAPIError) as error:
        raise StoreUnavailable(str(error.orig or error)) from error


# -- addresses ----------------------------------------------------------------


def located_to_slot(located: Located) -> dict[str, Any]:
    """A Located as a JSON-able slot value."""
    return asdict(located)


def located_from_slot(value: Any) -> Located | None:
    if not isinstance(value, dict):
        return None
    fields = set(Located.__dataclass_fields__)
    return Located(**{k: v for k, v in value.items() if k in fields})


def address_label(located: Located) -> str:
    """How an address is read back to the resident: 和平新村社区3号楼2单元501室."""
    return display.located_address(located)


def is_usable(located: Located) -> bool:
    """Good enough to route: a known community (grid or community office)."""
    return located.community is not None


def locate_text(text: str) -> Located:
    with _transaction(readonly=True) as session:
        return get_locator(session).locate_text(normalise(text, max_chars=None))


def locate_point(lat: float, lon: float, label: str | None = None) -> Located:
    with _transaction(readonly=True) as session:
        located = get_locator(session).locate_point(lat, lon)
    if label and located.address_text is None:
        located = Located(**{**asdict(located), "address_text": label})
    return located


def known_address(sender_id: str) -> Located | None:
    """The address a resident gave last time, located against today's directory."""
    with _transaction(readonly=True) as session:
        resident = service.get_resident(session, sender_id)
        if resident is None or resident.community is None:
            return None
        return get_locator(session).locate_parts(
            resident.community.name, resident.building, resident.unit, resident.room
        )


def remember_location(sender_id: str, lat: float, lon: float, channel: str | None) -> None:
    with _transaction() as session:
        service.set_location(session, sender_id, lat, lon, channel=channel)


# -- what the resident said -----------------------------------------------------

_FILLER = re.compile(
    r"[\s\W_]|俺|我|家|们|的|了|啊|呀|吧|呢|吗|嘛|想|要|反映|投诉|举报|问题|情况|事|一下|有|个|请问|您好|你好|那个"
)


def needs_more_detail(text: str, category: Category) -> bool:
    """True when a message names the category and hardly anything else.

    "暖气" or "投诉停车问题" say what kind of matter it is, not what happened;
    then the assistant asks "能具体说说吗？". Anything with a few more words is
    taken as the description.
    """
    core = _FILLER.sub("", normalise(text, max_chars=None))
    return len(core) <= 4


# -- tickets ------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What the resident is told when a ticket opens."""

    ticket_number: str
    category_code: str
    category_label: str
    level: str
    community: str | None
    grid_name: str | None
    worker_name: str | None
    worker_phone: str | None
    office_name: str | None
    office_phone: str | None
    due_text: str
    # other residents who reported the same fault (bot.tickets.incidents); 0: none
    neighbours: int = 0

    @property
    def handled_by_worker(self) -> bool:
        return self.level == "grid" and self.worker_name is not None


def _receipt(ticket: Any, category: Category, locator: Locator, neighbours: int = 0) -> Receipt:
    community = ticket.community.name if ticket.community else None
    info = locator.community(community)
    grid = locator.grid(ticket.grid.code if ticket.grid else None)
    return Receipt(
        ticket_number=ticket.number,
        category_code=category.code,
        category_label=category.label,
        level=ticket.level,
        community=community,
        grid_name=grid.name if grid else None,
        worker_name=grid.worker_name if grid and ticket.level == "grid" else None,
        worker_phone=grid.worker_phone if grid and ticket.level == "grid" else None,
        office_name=display.office_of(ticket),
        office_phone=(info.office_phone if info else None) or display.CITY_HOTLINE,
        due_text=display.due_text(ticket.due_at),
        neighbours=neighbours,
    )


def submit_report(
    *,
    sender_id: str,
    channel: str,
    message_id: str | None,
    category_code: str,
    description: str,
    original_text: str | None,
    located: Located | None,
    photos: Sequence[Any] = (),
    report_key: str | None = None,
) -> Receipt:
    """Open the ticket (exactly once per message, and per report: `report_key`)
    and remember the address.

    `photos`: the report's `photos` slot, stored photos (bot.tickets.photos)
    that are attached to the ticket; plain strings (links) are kept as before.
    """
    category = get_taxonomy().by_code(category_code)
    if category is None:
        raise ValueError(f"unknown category {category_code}")
    with _transaction() as session:
        ticket = service.open_ticket(
            session,
            sender_id=sender_id,
            channel=channel,
            message_id=message_id,
            category_code=category.code,
            description=description,
            original_text=original_text,
            location=located,
            photos=[p for p in photos if isinstance(p, str)],
            report_key=report_key,
        )
        stored = [s for s in map(StoredPhoto.from_slot, photos) if s is not None]
        if stored:
            attach_stored(session, ticket, stored, source="resident", actor=f"resident:{sender_id}")
        if located is not None and is_usable(located) and located.building is not None:
            service.bind_address(session, sender_id, located, channel=channel)
        return _receipt(
            ticket,
            category,
            get_locator(session),
            neighbours=incidents.neighbours_reporting(session, ticket),
        )


# A picture sent soon after a report belongs to it ("忘了发照片").
RECENT_TICKET_FOR_PHOTO = timedelta(hours=2)


def attach_to_recent_ticket(
    sender_id: str, stored: StoredPhoto, now: datetime | None = None
) -> str | None:
    """Attach the photo to the resident's ticket opened within RECENT_TICKET_FOR_PHOTO
    and still in hand; its number, or None when there is none."""
    since = aware(now) - RECENT_TICKET_FOR_PHOTO
    with _transaction() as session:
        ticket = session.execute(
            select(Ticket)
            .where(
                Ticket.sender_id == sender_id,
                Ticket.created_at >= since,
                Ticket.status.in_(("open", "accepted", "escalated")),
            )
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if ticket is None:
            return None
        attach_stored(session, ticket, [stored], source="resident", actor=f"resident:{sender_id}")
        return ticket.number


@dataclass(frozen=True)
class TicketLine:
    ticket_number: str
    category_label: str
    status: str
    status_label: str
    latest_note: str | None
    due_text: str
    description: str = ""


def open_tickets(sender_id: str, limit: int = 5) -> list[TicketLine]:
    """The resident's tickets still in hand, newest first."""
    with _transaction(readonly=True) as session:
        summaries = service.open_tickets_for(session, sender_id, limit=limit)
    return [
        TicketLine(
            ticket_number=s.number,
            category_label=display.category_label(s.category_code),
            status=s.status,
            status_label=display.status_label(s.status),
            latest_note=s.latest_note,
            due_text=display.due_text(s.due_at),
            description=s.description,
        )
        for s in summaries
    ]


CANCELLABLE = ("open", "accepted", "escalated")


def cancellable_ticket(sender_id: str, text: str | None = None) -> TicketLine | None:
    """The ticket a withdrawal means: the one whose number the message names,
    else the one whose category and description share most words with it
    ("暖气那个不用了"), else the newest one still in hand."""
    lines = [t for t in open_tickets(sender_id, limit=20) if t.status in CANCELLABLE]
    if not lines or not text:
        return lines[0] if lines else None
    wanted = normalise(text, max_chars=None)
    for line in lines:
        if line.ticket_number in wanted or line.ticket_number[-4:] in wanted:
            return line
    said = _bigrams(wanted)
    best = max(lines, key=lambda line: len(said & _bigrams(line.category_label + line.description)))
    if said & _bigrams(best.category_label + best.description):
        return best
    return lines[0]


def _bigrams(text: str) -> set[str]:
    core = _FILLER.sub("", normalise(text, max_chars=None))
    return {core[i : i + 2] for i in range(len(core) - 1)}


def cancel(sender_id: str, number: str, reason: str | None = None) -> TicketLine:
    with _transaction() as session:
        try:
            ticket = service.cancel_ticket(session, number, sender_id, reason=reason)
        except (service.TicketNotFound, IllegalTransition) as error:
            raise NotCancellable(str(error)) from error
        return TicketLine(
            ticket_number=ticket.number,
            category_label=display.category_label(ticket.category_code),
            status=ticket.status,
            status_label=display.status_label(ticket.status),
            latest_note=reason,
            due_text=display.due_text(ticket.due_at),
        )


# -- rating a resolved ticket ---------------------------------------------------------

# How long after the resolution a yes / no still rates it.
RATING_WINDOW = timedelta(days=7)


class NotRatable(LookupError):
    """No resolved ticket of this resident's to rate (or it changed meanwhile)."""


@dataclass(frozen=True)
class RatingRequest:
    """A resolved ticket waiting for the resident's 满意 / 不满意."""

    ticket_number: str
    category_label: str
    resolved_at: datetime


def pending_rating(sender_id: str, now: datetime | None = None) -> RatingRequest | None:
    """The resident's most recently resolved ticket not rated yet, within RATING_WINDOW.

    A rating closes (满意) or reopens (不满意) the ticket, so any ticket still
    resolved is unrated; one reopened and resolved again asks again.
    """
    since = aware(now) - RATING_WINDOW
    with _transaction(readonly=True) as session:
        row = session.execute(
            select(Ticket.number, Ticket.category_code, TicketEvent.at)
            .join(TicketEvent, TicketEvent.ticket_id == Ticket.id)
            .where(
                Ticket.sender_id == sender_id,
                Ticket.status == "resolved",
                TicketEvent.type == "resolved",
                TicketEvent.at >= since,
            )
            .order_by(TicketEvent.at.desc(), TicketEvent.id.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    return RatingRequest(
        ticket_number=row.number,
        category_label=display.category_label(row.category_code),
        resolved_at=row.at,
    )


_BARE_RATING = re.compile(r"^(不?满意|不太满意|还行|挺好的?|好的?)$")


def rate(
    sender_id: str,
    number: str,
    satisfied: bool,
    comment: str | None = None,
    now: datetime | None = None,
) -> TicketLine:
    """The resident's verdict on a resolved ticket of theirs.

    满意: the ticket is closed. 不满意: it is reopened with a fresh time limit and the
    worker's group robot hears of it (bot.notify, same transaction). `comment` is the
    resident's words ("不满意，还是不热"), kept as the reason when they say more than
    the bare verdict.
    """
    actor = f"resident:{sender_id}"
    words = re.sub(r"[\s\W_]+", "", comment or "")
    said_more = bool(words) and not _BARE_RATING.match(words)
    with _transaction() as session:
        ticket = service.get_ticket(session, number)
        if ticket is None or ticket.sender_id != sender_id or ticket.status != "resolved":
            raise NotRatable(f"no resolved ticket {number} of {sender_id}")
        try:
            if satisfied:
                service.close(
                    session,
                    ticket,
                    actor=actor,
                    note="居民满意" + (f"：{comment}" if said_more else ""),
                    data={"rating": "satisfied"},
                    now=now,
                )
            else:
                service.reopen(
                    session,
                    ticket,
                    actor=actor,
                    reason="居民不满意" + (f"：{comment}" if said_more else ""),
                    data={"rating": "unsatisfied"},
                    now=now,
                )
        except (IllegalTransition, StaleDataError) as error:  # changed meanwhile
            raise NotRatable(str(error)) from error
        return TicketLine(
            ticket_number=ticket.number,
            category_label=display.category_label(ticket.category_code),
            status=ticket.status,
            status_label=display.status_label(ticket.status),
            latest_note=comment if said_more else None,
            due_text=display.due_text(ticket.due_at),
        )


# -- a resident's own data (我的信息 / 删除我的信息) -------------------------------


def _log():
    from bot.privacy.records import log_engine
    from bot.settings import get_settings

    try:
        return log_engine(get_settings().tracker_database_url)
    except (OperationalError, DBAPIError) as error:
        raise StoreUnavailable(str(error.orig or error)) from error


def my_data(sender_id: str) -> Any:
    """What is kept about the resident (bot.privacy.rights.Kept)."""
    from bot.privacy import rights

    log = _log()
    try:
        with _transaction(readonly=True) as session:
            return rights.what_is_kept(session, log, sender_id)
    except (OperationalError, DBAPIError) as error:
        raise StoreUnavailable(str(error.orig or error)) from error
    finally:
        if log is not None:
            log.dispose()


def erase_my_data(sender_id: str, withdraw_open: bool) -> Any:
    """Forget the resident (bot.privacy.rights.erase, then the log); the Erased."""
    from bot.privacy import rights

    with _transaction() as session:
        erased = rights.erase(session, sender_id, withdraw_open=withdraw_open)
    log = _log()
    try:
        rights.forget_log(log, sender_id)
    except (OperationalError, DBAPIError):
        pass  # the tracker store forgets the conversation when it saves the turn
    finally:
        if log is not None:
            log.dispose()
    return erased
