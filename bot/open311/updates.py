"""Request updates, as mySociety's GeoReport v2 extension defines them
(`servicerequestupdates.xml`/`.json`, the one FixMyStreet speaks).

GET: what happened to public requests in a window, oldest first: every status
change and handler note of the ticket log is one update, `update_id` being the
event's id and `status` the ticket's status after it, in the extension's words
(STATUS_WORDS). Notes the rules of status_notes leave out (who submitted a
request, assignment notes) are not updates.

POST: another city system updates one of our tickets with a status and a
public description. The update goes through the ticket state machine exactly
as a worker's action does (bot.tickets.service: accept, resolve, close,
reopen, or a note when the status does not change), so the resident hears of
it like any news. The poster's `update_id` is kept with a unique constraint
(bot.store.models.Open311Update): a replayed update changes nothing and
answers the same stored `update_id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import apikeys
from bot.open311.answers import ERRORS, UPDATES, Answer, Open311Error, error
from bot.open311.mapping import (
    SENDER_PREFIX,
    is_contact_note,
    local_zone,
    public_categories,
    w3c,
)
from bot.open311.parsing import (
    MAX_DESCRIPTION,
    MAX_FIELD,
    MAX_URL,
    RequestQuery,
    field_text,
    parse_query,
    parse_w3c,
)
from bot.store.models import Open311Update, Ticket, TicketEvent, aware
from bot.taxonomy import Taxonomy
from bot.tickets import publication, service
from bot.tickets.state import IllegalTransition, Status

MAX_UPDATE_ID = 128
# The ticket status after an update, in the extension's status words.
STATUS_WORDS = {
    "open": "open",
    "accepted": "in_progress",
    "escalated": "in_progress",
    "resolved": "fixed",
    "closed": "closed",
    "cancelled": "closed",
}
# Statuses a posted update may carry (case-insensitive), by what they ask for:
# the request is open again, someone works on it, or it is done.
REOPENING = ("open",)
WORKING = ("in_progress", "investigating", "action_scheduled")
CLOSING = (
    "fixed",
    "closed",
    "duplicate",
    "not_councils_responsibility",
    "no_further_action",
    "internal_referral",
    "unable_to_fix",
)
POSTED_STATUSES = REOPENING + WORKING + CLOSING
# Event types that are updates (created and assigned are not news of progress).
UPDATE_EVENTS = (
    "accepted",
    "note",
    "resolved",
    "cancelled",
    "escalated",
    "reopened",
    "transferred",
    "closed",
)
CONTACT_FIELDS = ("email", "first_name", "last_name", "title", "account_id")


# -- GET ------------------------------------------------------------------------------


def parse_update_query(
    pairs: Iterable[tuple[str, Any]], *, now: datetime | None = None, zone: ZoneInfo | None = None
) -> RequestQuery:
    """`start_date`/`end_date` (and the `page`/`page_size` extension), read and
    checked as for GET requests: the same W3C dates and 90-day window."""
    wanted = ("start_date", "end_date", "page", "page_size")
    return parse_query([(k, v) for k, v in pairs if k in wanted], now=now, zone=zone)


def find_updates(
    session: Session,
    query: RequestQuery,
    *,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[dict[str, Any]]:
    """GET servicerequestupdates: the updates of public requests in the window,
    oldest first (as a follower applies them). Public: only categories
    taxonomy.yml publishes, and only staff's words (bot.tickets.publication)."""
    zone = zone or local_zone()
    codes = publication.readable_codes(publication.PUBLIC, taxonomy)
    stmt = (
        select(TicketEvent, Ticket.number)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .where(
            Ticket.category_code.in_(codes),
            TicketEvent.type.in_(UPDATE_EVENTS),
            # a note is news only when it says something, and never the contact note
            or_(TicketEvent.type != "note", func.coalesce(TicketEvent.note, "") != ""),
            ~is_contact_note(TicketEvent),
            # the system's own notes (linking neighbours' reports into one incident)
            # are for the worker's page, not news for a city system to follow
            or_(TicketEvent.type != "note", TicketEvent.actor != "system"),
        )
        .order_by(TicketEvent.at, TicketEvent.id)
        .offset((query.page - 1) * query.page_size)
        .limit(query.page_size)
    )
    if query.start is not None:
        stmt = stmt.where(TicketEvent.at >= query.start)
    if query.end is not None:
        stmt = stmt.where(TicketEvent.at <= query.end)
    rows = list(session.execute(stmt))
    statuses = _statuses_after(session, [event for event, _ in rows])
    return [
        {
            "update_id": str(event.id),
            "service_request_id": number,
            "status": STATUS_WORDS.get(statuses[event.id], "open"),
            "updated_datetime": w3c(event.at, zone),
            "description": publication.public_update_note(event.note, event.actor),
            "media_url": (event.data or {}).get("media_url"),
        }
        for event, number in rows
    ]


def _statuses_after(session: Session, events: list[TicketEvent]) -> dict[int, str]:
    """The ticket's status after each event: the `to` of the latest status
    change up to it (a ticket starts open)."""
    if not events:
        return {}
    ticket_ids = {e.ticket_id for e in events}
    history = session.execute(
        select(TicketEvent.id, TicketEvent.ticket_id, TicketEvent.data)
        .where(TicketEvent.ticket_id.in_(ticket_ids), TicketEvent.id <= max(e.id for e in events))
        .order_by(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.id)
    )
    current: dict[int, str] = {}
    after: dict[int, str] = {}
    for event_id, ticket_id, data in history:
        to = (data or {}).get("to")
        if isinstance(to, str):
            current[ticket_id] = to
        after[event_id] = current.get(ticket_id, Status.OPEN.value)
    return after


# -- POST -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewUpdate:
    service_request_id: str
    update_id: str
    status: str  # one of POSTED_STATUSES
    description: str | None
    updated_datetime: datetime | None
    media_url: str | None
    contact: tuple[tuple[str, str], ...]


def parse_update(fields: Mapping[str, str], zone: ZoneInfo) -> NewUpdate:
    """Check the fields of POST servicerequestupdates; Open311Error lists every problem."""
    problems: list[dict[str, Any]] = []
    if any("\x00" in v for v in fields.values()):
        raise Open311Error.of(400, "a field contains a NUL character")
    request_id = field_text(fields, "service_request_id")
    if request_id is None:
        problems.append(error(400, "service_request_id is required"))
    # FixMyStreet's "extended updates" send their id as update_id_ext.
    update_id = field_text(fields, "update_id") or field_text(fields, "update_id_ext")
    if update_id is None:
        problems.append(error(400, "update_id is required"))
    elif len(update_id) > MAX_UPDATE_ID:
        problems.append(error(400, f"update_id may have at most {MAX_UPDATE_ID} characters"))
    status = (field_text(fields, "status") or "").lower()
    if not status:
        problems.append(error(400, "status is required"))
    elif status not in POSTED_STATUSES:
        problems.append(
            error(
                400,
                f"status must be one of {', '.join(s.upper() for s in POSTED_STATUSES)},"
                f" not {status[:40]!r}",
            )
        )
    description = field_text(fields, "description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        problems.append(error(400, f"description may have at most {MAX_DESCRIPTION} characters"))
    updated = None
    raw_time = field_text(fields, "updated_datetime")
    if raw_time is not None:
        try:
            updated = parse_w3c(raw_time, zone)
        except ValueError as exc:
            problems.append(error(400, f"updated_datetime: {exc}"))
    media_url = field_text(fields, "media_url")
    if media_url is not None and (
        len(media_url) > MAX_URL or not media_url.lower().startswith(("http://", "https://"))
    ):
        problems.append(error(400, "media_url must be an http(s) URL"))
    contact = []
    for name in CONTACT_FIELDS:
        value = field_text(fields, name)
        if value is None:
            continue
        if len(value) > MAX_FIELD:
            problems.append(error(400, f"{name} may have at most {MAX_FIELD} characters"))
        contact.append((name, value))
    if problems:
        raise Open311Error(400, problems)
    assert request_id is not None and update_id is not None
    return NewUpdate(
        service_request_id=request_id,
        update_id=update_id,
        status=status,
        description=description,
        updated_datetime=updated,
        media_url=media_url,
        contact=tuple(contact),
    )


def _apply(
    session: Session,
    ticket: Ticket,
    new: NewUpdate,
    actor: str,
    data: dict[str, Any],
    now: datetime,
    taxonomy: Taxonomy | None,
) -> TicketEvent:
    """The update as the worker's action it asks for (a note when the ticket
    already is where the update says); IllegalTransition when it cannot be."""
    current = Status(ticket.status)
    note = new.description
    if new.status in REOPENING:
        if current is Status.RESOLVED:
            service.reopen(
                session, ticket, actor=actor, reason=note, now=now, taxonomy=taxonomy, data=data
            )
            return ticket.events[-1]
        if current in (Status.CLOSED, Status.CANCELLED):
            raise IllegalTransition(current.value, "reopen", ticket.number)
    elif new.status in WORKING:
        if current in (Status.OPEN, Status.ESCALATED):
            service.accept(session, ticket, actor=actor, note=note, now=now, data=data)
            return ticket.events[-1]
        if current is not Status.ACCEPTED:
            raise IllegalTransition(current.value, "accept", ticket.number)
    else:
        if current in (Status.OPEN, Status.ACCEPTED, Status.ESCALATED):
            service.resolve(session, ticket, actor=actor, note=note, now=now, data=data)
            return ticket.events[-1]
        if current is Status.RESOLVED and new.status == "closed":
            service.close(session, ticket, actor=actor, note=note, now=now, data=data)
            return ticket.events[-1]
    # Already where the update says: its description is a note of the handler.
    return service.add_note(session, ticket, actor=actor, note=note or "", data=data, now=now)


def post_update(
    session: Session,
    fields: Mapping[str, str],
    *,
    now: datetime | None = None,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
) -> Answer:
    """POST servicerequestupdates in the caller's transaction: check the key,
    the fields, the request; apply the update once; answer its `update_id`."""
    now = aware(now)
    zone = zone or local_zone()
    token = field_text(fields, "api_key")
    if token is None:
        return Answer([error(403, "api_key was not provided")], ERRORS, 403)
    key = apikeys.verify_key(session, token, now)
    if key is None:
        return Answer(
            [error(403, "Invalid api_key received -- can't proceed with update.")], ERRORS, 403
        )
    try:
        new = parse_update(fields, zone)
    except Open311Error as exc:
        return exc.answer()
    source = f"{SENDER_PREFIX}{key.prefix}"

    stored = _stored(session, source, new.update_id)
    if stored is not None:
        return _answer(stored)

    codes = {c.code for c in public_categories(taxonomy)}
    ticket = service.get_ticket(session, new.service_request_id)
    if ticket is None or ticket.category_code not in codes:
        return Answer(
            [error(404, f"service_request_id {new.service_request_id[:50]} was not found")],
            ERRORS,
            404,
        )
    row = Open311Update(
        source=source,
        update_id=new.update_id,
        ticket_id=ticket.id,
        status=new.status,
        created_at=now,
    )
    try:
        # Claim the update id first: of two concurrent posts of one update,
        # the second fails here and answers what the first stored.
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        stored = _stored(session, source, new.update_id)
        if stored is None:
            raise
        return _answer(stored)

    data: dict[str, Any] = {"open311_update_id": new.update_id, "open311_status": new.status}
    if new.updated_datetime is not None:
        data["updated_datetime"] = new.updated_datetime.isoformat()
    if new.media_url:
        data["media_url"] = new.media_url
    if new.contact:
        data["open311_author"] = dict(new.contact)
    try:
        event = _apply(session, ticket, new, source, data, now, taxonomy)
    except IllegalTransition as exc:
        session.delete(row)
        return Answer([error(400, str(exc))], ERRORS, 400)
    session.flush()
    row.event_id = event.id
    return _answer(row)


def _stored(session: Session, source: str, update_id: str) -> Open311Update | None:
    return session.execute(
        select(Open311Update).where(
            Open311Update.source == source, Open311Update.update_id == update_id
        )
    ).scalar_one_or_none()


def _answer(row: Open311Update) -> Answer:
    return Answer([{"update_id": str(row.event_id)}], UPDATES)
