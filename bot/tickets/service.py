"""Tickets and residents: the API the Rasa actions and the web app call.

Every function takes a Session and works inside the caller's transaction: it
flushes but never commits (use `bot.store.db.session_scope`). Status changes
go through `bot.tickets.state`, which appends the matching TicketEvent.

Tickets may be given as a Ticket or as its number ("20261127-0007").
Actors are free text such as "resident:<sender_id>", "worker:<id>", "system".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from bot.notify import outbox
from bot.routing.locator import Located, Location, Route, get_locator
from bot.settings import get_settings
from bot.store.models import (
    Community,
    Counter,
    Grid,
    Resident,
    Ticket,
    TicketEvent,
    Worker,
    aware,
)
from bot.taxonomy import HANDOFF, Category, Taxonomy, get_taxonomy
from bot.tickets import display, incidents
from bot.tickets.state import (
    IN_PROGRESS,
    TERMINAL,
    Action,
    IllegalTransition,
    Status,
    next_level,
    record,
    transition,
)

__all__ = [
    "Escalation",
    "IllegalTransition",
    "Location",
    "TicketNotFound",
    "TicketSummary",
    "accept",
    "add_note",
    "allocate_ticket_number",
    "bind_address",
    "cancel_ticket",
    "close",
    "escalate",
    "escalate_overdue",
    "get_resident",
    "get_ticket",
    "open_ticket",
    "open_tickets_for",
    "recategorise",
    "reopen",
    "resolve",
    "set_location",
    "transfer",
]

MAX_ID = 128  # sender_id and message_id column width


class TicketNotFound(LookupError):
    """No such ticket (or not the caller's own)."""


@dataclass(frozen=True)
class TicketSummary:
    number: str
    category_code: str
    status: str
    level: str
    community: str | None
    grid: str | None
    description: str
    created_at: datetime
    due_at: datetime | None
    latest_note: str | None
    latest_note_at: datetime | None


@dataclass(frozen=True)
class Escalation:
    number: str
    from_level: str
    to_level: str
    community: str | None
    grid: str | None
    due_at: datetime
    reason: str


# -- numbers -----------------------------------------------------------------


def _local_day(now: datetime) -> str:
    return now.astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y%m%d")


def allocate_ticket_number(session: Session, now: datetime | None = None) -> str:
    """Next number of the local day, e.g. 20261127-0007.

    The per-day counter row is incremented in the caller's transaction: on
    PostgreSQL the UPDATE locks the row until commit, on SQLite the whole
    write transaction is exclusive (BEGIN IMMEDIATE), so two transactions
    never get the same number and a rolled-back ticket gives its number back.
    """
    day = _local_day(aware(now))
    name = f"ticket:{day}"
    bump = (
        update(Counter)
        .where(Counter.name == name)
        .values(value=Counter.value + 1)
        .execution_options(synchronize_session=False)
    )
    if session.execute(bump).rowcount == 0:
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=1))
        except IntegrityError:
            # Another transaction created today's row first; count on it.
            session.execute(bump)
    value = session.execute(select(Counter.value).where(Counter.name == name)).scalar_one()
    return f"{day}-{value:04d}"


# -- lookups -----------------------------------------------------------------


def get_ticket(session: Session, number: str) -> Ticket | None:
    return session.execute(select(Ticket).where(Ticket.number == number)).scalar_one_or_none()


def _ticket(session: Session, ticket: Ticket | str) -> Ticket:
    if isinstance(ticket, Ticket):
        return ticket
    found = get_ticket(session, ticket)
    if found is None:
        raise TicketNotFound(f"没有编号为{ticket}的工单 / no ticket {ticket}")
    return found


def _by_message(session: Session, sender_id: str, message_id: str) -> Ticket | None:
    return session.execute(
        select(Ticket).where(Ticket.sender_id == sender_id, Ticket.message_id == message_id)
    ).scalar_one_or_none()


def _by_report(session: Session, sender_id: str, report_key: str) -> Ticket | None:
    """The ticket of this report: a report is opened once, also when its confirmation
    comes again in another message (the turn that opened it was lost to a crash or a
    database outage, so the conversation still asks)."""
    return session.execute(
        select(Ticket).where(Ticket.sender_id == sender_id, Ticket.report_key == report_key)
    ).scalar_one_or_none()


def _category(code: str, taxonomy: Taxonomy | None) -> Category:
    category = (taxonomy or get_taxonomy()).by_code(code)
    if category is None:
        raise ValueError(f"unknown category code {code!r}")
    return category


def _check_id(name: str, value: str | None, required: bool = True) -> None:
    if value is None or value == "":
        if required:
            raise ValueError(f"{name} is required")
        return
    if len(value) > MAX_ID:
        raise ValueError(f"{name} longer than {MAX_ID} characters")


# -- opening -----------------------------------------------------------------


def open_ticket(
    session: Session,
    *,
    sender_id: str,
    channel: str,
    message_id: str | None,
    category_code: str,
    description: str,
    original_text: str | None = None,
    location: Location | None = None,
    photos: tuple[str, ...] | list[str] = (),
    actor: str = "resident",
    now: datetime | None = None,
    taxonomy: Taxonomy | None = None,
    report_key: str | None = None,
) -> Ticket:
    """Open a ticket for a resident's message, exactly once per (sender, message).

    A repeated (sender_id, message_id) returns the ticket opened the first
    time, also when two deliveries race (the unique constraint decides, the
    loser rolls back its savepoint and reads the winner's ticket). So does a
    repeated `report_key` (the message that started the report) from the same
    sender: the same report confirmed again by a later message.
    """
    _check_id("sender_id", sender_id)
    _check_id("message_id", message_id, required=False)
    _check_id("report_key", report_key, required=False)
    category = _category(category_code, taxonomy)
    if message_id:
        existing = _by_message(session, sender_id, message_id)
        if existing is not None:
            return existing
    now = aware(now)
    if report_key:
        existing = _by_report(session, sender_id, report_key)
        if existing is not None:
            return existing

    located = location or Located()
    route = get_locator(session).route(category, located)
    try:
        with session.begin_nested():
            ticket = Ticket(
                number=allocate_ticket_number(session, now),
                category_code=category.code,
                kind=category.kind,
                description=description or "",
                original_text=original_text,
                community_id=route.community_id,
                building=located.building,
                unit=located.unit,
                room=located.room,
                address_text=located.address_text,
                lat=located.lat,
                lon=located.lon,
                grid_id=route.grid_id,
                level=route.level,
                assignee_id=route.assignee,
                routing_reason=route.reason,
                status=Status.OPEN.value,
                due_at=now + timedelta(hours=category.sla_hours),
                channel=channel,
                sender_id=sender_id,
                message_id=message_id or None,
                report_key=report_key or None,
                photos=list(photos),
                created_at=now,
                updated_at=now,
            )
            session.add(ticket)
            record(
                ticket,
                "created",
                actor=actor,
                data={
                    "category": category.code,
                    "channel": channel,
                    "message_id": message_id,
                    **({"report_key": report_key} if report_key else {}),
                },
                now=now,
            )
            if route.community is not None:
                record(
                    ticket,
                    "assigned",
                    actor="system",
                    note=route.reason,
                    data=_route_data(route),
                    now=now,
                )
            session.flush()
            outbox.enqueue_new_ticket(session, ticket, now=now)  # same transaction
            # neighbours' reports of the same fault become one incident
            incidents.link_new_ticket(session, ticket, now=now, taxonomy=taxonomy)
    except IntegrityError:
        # Another delivery of the message, or another turn of the report, won the race.
        existing = _by_message(session, sender_id, message_id) if message_id else None
        if existing is None and report_key:
            existing = _by_report(session, sender_id, report_key)
        if existing is None:
            raise
        return existing
    return ticket


def _route_data(route: Route) -> dict:
    return {
        "level": route.level,
        "community": route.community,
        "grid": route.grid,
        "assignee_id": route.assignee,
        "assignee": route.assignee_name,
    }


# -- residents' view ---------------------------------------------------------


def open_tickets_for(session: Session, sender_id: str, limit: int = 5) -> list[TicketSummary]:
    """The resident's tickets that are not closed or cancelled, newest first.

    Resolved tickets are included: the resident may still object (reopen).
    `latest_note` is the newest event text (a worker's note, the resolution...).
    """
    tickets = (
        session.execute(
            select(Ticket)
            .where(
                Ticket.sender_id == sender_id,
                Ticket.status.notin_([s.value for s in TERMINAL]),
            )
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
    summaries = []
    for t in tickets:
        note = session.execute(
            select(TicketEvent)
            .where(
                TicketEvent.ticket_id == t.id,
                TicketEvent.note.isnot(None),
                TicketEvent.type != "assigned",
            )
            .order_by(TicketEvent.at.desc(), TicketEvent.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        summaries.append(
            TicketSummary(
                number=t.number,
                category_code=t.category_code,
                status=t.status,
                level=t.level,
                community=t.community.name if t.community else None,
                grid=t.grid.code if t.grid else None,
                description=t.description,
                created_at=t.created_at,
                due_at=t.due_at,
                latest_note=note.note if note else None,
                latest_note_at=note.at if note else None,
            )
        )
    return summaries


def cancel_ticket(
    session: Session,
    number: str,
    sender_id: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> Ticket:
    """The resident withdraws their own ticket (another's counts as not found)."""
    ticket = get_ticket(session, number)
    if ticket is None or ticket.sender_id != sender_id:
        raise TicketNotFound(f"没有编号为{number}的工单 / no ticket {number}")
    transition(ticket, Action.CANCEL, actor=f"resident:{sender_id}", note=reason, now=now)
    session.flush()
    return ticket


# -- handling ----------------------------------------------------------------


def add_note(
    session: Session,
    ticket: Ticket | str,
    actor: str,
    note: str,
    data: dict | None = None,
    now: datetime | None = None,
) -> TicketEvent:
    t = _ticket(session, ticket)
    event = record(t, "note", actor=actor, note=note, data=data, now=now)
    t.updated_at = event.at
    session.flush()
    return event


def publish_summary(
    session: Session,
    ticket: Ticket | str,
    actor: str,
    summary: str,
    now: datetime | None = None,
) -> TicketEvent:
    """Publish a cleaned summary of the matter for the public record (empty:
    withdraw it); recorded in the history (bot.tickets.publication)."""
    from bot.tickets import publication

    t = _ticket(session, ticket)
    summary = publication.clean_summary(summary)
    t.public_summary = summary or None
    note = publication.SUMMARY_NOTE_PREFIX + (summary or "（已撤回）")
    event = record(t, "note", actor=actor, note=note, data={"public_summary": True}, now=now)
    t.updated_at = event.at
    session.flush()
    return event


def accept(
    session: Session,
    ticket: Ticket | str,
    actor: str,
    note: str | None = None,
    worker_id: int | None = None,
    now: datetime | None = None,
    data: dict | None = None,
) -> Ticket:
    """The handler takes the ticket on (optionally naming the worker who does)."""
    t = _ticket(session, ticket)
    worker = session.get(Worker, worker_id) if worker_id is not None else None
    if worker_id is not None and worker is None:
        raise ValueError(f"no worker {worker_id}")
    transition(
        t,
        Action.ACCEPT,
        actor=actor,
        note=note,
        data={**({"worker_id": worker_id} if worker_id else {}), **(data or {})} or None,
        now=now,
    )
    if worker is not None:
        t.assignee = worker
    session.flush()
    outbox.enqueue_resident_update(session, t, outbox.KIND_ACCEPTED, note=note, now=now)
    return t


def resolve(
    session: Session,
    ticket: Ticket | str,
    actor: str,
    note: str | None = None,
    now: datetime | None = None,
    data: dict | None = None,
) -> Ticket:
    t = _ticket(session, ticket)
    transition(t, Action.RESOLVE, actor=actor, note=note, data=data, now=now)
    session.flush()
    outbox.enqueue_resident_update(session, t, outbox.KIND_RESOLVED, note=note, now=now)
    return t


def close(
    session: Session,
    ticket: Ticket | str,
    actor: str,
    note: str | None = None,
    now: datetime | None = None,
    data: dict | None = None,
) -> Ticket:
    """Final close of a resolved ticket (resident satisfied, or staff after a while)."""
    t = _ticket(session, ticket)
    transition(t, Action.CLOSE, actor=actor, note=note, data=data, now=now)
    session.flush()
    return t


def reopen(
    session: Session,
    ticket: Ticket | str,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
    taxonomy: Taxonomy | None = None,
    data: dict | None = None,
) -> Ticket:
    """The resident is not satisfied: back to open with a fresh SLA window."""
    t = _ticket(session, ticket)
    now = aware(now)
    transition(t, Action.REOPEN, actor=actor, note=reason, data=data, now=now)
    t.due_at = now + timedelta(hours=_category(t.category_code, taxonomy).sla_hours)
    session.flush()
    outbox.enqueue_reopened(session, t, reason=reason, data=data, now=now)
    return t


def transfer(
    session: Session,
    ticket: Ticket | str,
    to_grid_code: str,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
    taxonomy: Taxonomy | None = None,
) -> Ticket:
    """Hand the ticket to another grid (wrong grid, or a higher level sends it down).

    The ticket becomes open at grid level with the new grid's worker, who
    gets a fresh SLA window (the transfer is on record as an event).
    """
    t = _ticket(session, ticket)
    grid = session.execute(
        select(Grid).where(Grid.code == to_grid_code, Grid.active.is_(True))
    ).scalar_one_or_none()
    if grid is None:
        raise ValueError(f"没有启用的网格{to_grid_code} / no active grid {to_grid_code}")
    now = aware(now)
    old = {"grid": t.grid.code if t.grid else None, "level": t.level}
    transition(
        t,
        Action.TRANSFER,
        actor=actor,
        note=reason,
        now=now,
        data={"from_grid": old["grid"], "from_level": old["level"], "to_grid": grid.code},
    )
    # Relationships, not ids: loaded relationships would otherwise go stale.
    t.grid = grid
    t.community = grid.community
    t.level = "grid"
    t.assignee = grid.worker
    t.due_at = now + timedelta(hours=_category(t.category_code, taxonomy).sla_hours)
    t.routing_reason = f"由{old['grid'] or old['level']}转派至{grid.name}（{grid.code}）" + (
        f"：{reason}" if reason else ""
    )
    session.flush()
    return t


def recategorise(
    session: Session,
    ticket: Ticket | str,
    category_code: str,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
    taxonomy: Taxonomy | None = None,
) -> Ticket:
    """Give the ticket another category (the assistant chose the wrong one).

    Not a status change: the status stays, and the change is on record as a
    `note` event with data {"category_from", "category_to"} (the review inbox
    reads it as a worker's label for the resident's message). The deadline
    keeps its window's start and takes the new category's SLA; the handler
    and level stay (transfer or escalate for those). Closed and cancelled
    tickets keep their category.
    """
    t = _ticket(session, ticket)
    new = _category(category_code, taxonomy)
    if new.code == HANDOFF.code:
        raise ValueError("人工联系不是诉求类别 / HANDOFF is not a category to choose")
    if Status(t.status) in TERMINAL:
        raise ValueError(
            f"工单{t.number}{display.status_label(t.status)}，不能修改类别"
            f" / ticket {t.number} is {t.status}; its category stays"
        )
    if new.code == t.category_code:
        raise ValueError(
            f"工单{t.number}已是“{new.label}” / ticket {t.number} is {new.code} already"
        )
    old = (taxonomy or get_taxonomy()).by_code(t.category_code)
    now = aware(now)
    note = f"类别由“{old.label if old else t.category_code}”改为“{new.label}”" + (
        f"：{reason}" if reason else ""
    )
    event = record(
        t,
        "note",
        actor=actor,
        note=note,
        data={"category_from": t.category_code, "category_to": new.code},
        now=now,
    )
    if t.due_at is not None:
        old_hours = old.sla_hours if old else new.sla_hours
        t.due_at = t.due_at - timedelta(hours=old_hours) + timedelta(hours=new.sla_hours)
    t.category_code = new.code
    t.kind = new.kind
    t.updated_at = event.at
    session.flush()
    return t


def escalate(
    session: Session,
    ticket: Ticket | str,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
    taxonomy: Taxonomy | None = None,
) -> Escalation:
    """Push the ticket one level up (grid -> community -> street).

    The new level gets a fresh SLA window; the handler becomes the office of
    that level (assignee cleared), the grid stays recorded.
    """
    t = _ticket(session, ticket)
    now = aware(now)
    from_level = t.level
    to_level = next_level(from_level)
    community = t.community
    office = display.office_of(t, to_level)
    text = reason or f"超过办理时限，由{display.level_label(from_level)}升级至{office}"
    transition(
        t,
        Action.ESCALATE,
        actor=actor,
        note=text,
        now=now,
        data={"from_level": from_level, "to_level": to_level, "office": office},
    )
    t.level = to_level or from_level
    t.assignee = None
    t.due_at = now + timedelta(hours=_category(t.category_code, taxonomy).sla_hours)
    session.flush()
    outbox.enqueue_escalated(session, t, text, now=now)
    return Escalation(
        number=t.number,
        from_level=from_level,
        to_level=t.level,
        community=community.name if community else None,
        grid=t.grid.code if t.grid else None,
        due_at=t.due_at,
        reason=text,
    )


def escalate_overdue(
    session: Session, now: datetime | None = None, taxonomy: Taxonomy | None = None
) -> list[Escalation]:
    """Escalate every overdue ticket one level; return what was escalated.

    Each step happens once: escalation moves due_at a full SLA window ahead,
    so the ticket is not overdue on the next run, and the ticket's version
    column makes a concurrent run (another process) lose instead of repeating
    the step. Street-level tickets are not escalated further.
    """
    now = aware(now)
    overdue = (
        session.execute(
            select(Ticket.id)
            .where(
                Ticket.status.in_([s.value for s in IN_PROGRESS]),
                Ticket.due_at < now,
                Ticket.level != "street",
            )
            .order_by(Ticket.due_at, Ticket.id)
        )
        .scalars()
        .all()
    )
    done: list[Escalation] = []
    for ticket_id in overdue:
        try:
            with session.begin_nested():
                t = session.get(Ticket, ticket_id, populate_existing=True)
                if t is None or t.level == "street" or t.due_at is None or t.due_at >= now:
                    continue
                done.append(
                    escalate(session, t, actor="system:escalation", now=now, taxonomy=taxonomy)
                )
        except (StaleDataError, IllegalTransition):
            # Changed by someone else meanwhile: nothing to do this round.
            continue
    return done


# -- residents ----------------------------------------------------------------


def get_resident(session: Session, sender_id: str) -> Resident | None:
    return session.execute(
        select(Resident).where(Resident.sender_id == sender_id)
    ).scalar_one_or_none()


def _resident(session: Session, sender_id: str, channel: str | None) -> Resident:
    _check_id("sender_id", sender_id)
    resident = get_resident(session, sender_id)
    if resident is None:
        try:
            with session.begin_nested():
                resident = Resident(sender_id=sender_id, channel=channel)
                session.add(resident)
                session.flush()
        except IntegrityError:
            # Two messages of a new resident at once; use the other's row.
            resident = get_resident(session, sender_id)
            assert resident is not None
    elif channel and resident.channel != channel:
        resident.channel = channel
    return resident


def _ids(session: Session, located: Located) -> tuple[int | None, int | None]:
    community_id = grid_id = None
    if located.community:
        community_id = session.execute(
            select(Community.id).where(Community.name == located.community)
        ).scalar_one_or_none()
    if located.grid:
        grid_id = session.execute(
            select(Grid.id).where(Grid.code == located.grid)
        ).scalar_one_or_none()
    return community_id, grid_id


def bind_address(
    session: Session,
    sender_id: str,
    located: Located,
    channel: str | None = None,
    now: datetime | None = None,
) -> Resident:
    """Remember the resident's address so later reports need not ask again."""
    resident = _resident(session, sender_id, channel)
    community_id, grid_id = _ids(session, located)
    resident.community_id = community_id
    resident.building = located.building
    resident.unit = located.unit
    resident.room = located.room
    resident.grid_id = grid_id
    resident.updated_at = aware(now)
    session.flush()
    return resident


def set_location(
    session: Session,
    sender_id: str,
    lat: float,
    lon: float,
    channel: str | None = None,
    now: datetime | None = None,
) -> Resident:
    """Remember the resident's last shared location (a WeChat location message)."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"not a location: {lat}, {lon}")
    resident = _resident(session, sender_id, channel)
    now = aware(now)
    resident.last_lat = lat
    resident.last_lon = lon
    resident.located_at = now
    resident.updated_at = now
    session.flush()
    return resident
