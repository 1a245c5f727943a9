"""GET requests.json and requests/{id}.json: tickets as service requests.

Who has a ticket and its address read as everywhere else (bot.tickets.display).
What a reader may see (which categories, which of the resident's fields) is
bot.tickets.publication's decision: the public gets public categories'
coarse records, a system with a read key the full ones, each read recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import Session, aliased

from bot import access_log, apikeys
from bot.open311.answers import Open311Error
from bot.open311.mapping import SENDER_PREFIX, STATUS_MAP, local_zone, w3c
from bot.open311.parsing import RequestQuery
from bot.store.models import Community, Grid, Street, Ticket, TicketEvent, Worker, aware
from bot.taxonomy import Taxonomy
from bot.tickets import display, publication
from bot.tickets.publication import PUBLIC, Reader, Shown


class TicketRow(NamedTuple):
    """What a request is made of: a ticket's columns and its latest handler note.

    A NamedTuple (not a dataclass): up to 1,000 are made per answer, cheaply.
    """

    number: str
    category_code: str
    status: str
    level: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    routing_reason: str | None = None
    community_id: int | None = None
    grid_id: int | None = None
    assignee_id: int | None = None
    building: int | None = None
    unit: str | None = None
    address_text: str | None = None
    lat: float | None = None
    lon: float | None = None
    photos: tuple[str, ...] | str = ()  # or the column's raw JSON text
    channel: str | None = None
    room: str | None = None
    public_summary: str | None = None
    status_notes: str | None = None


@dataclass(frozen=True)
class Places:
    """The grids, communities, streets and workers some tickets refer to, by id:
    (code, name, worker id), (name, office name, street id), (name, office name),
    (name, role)."""

    grids: Mapping[int, tuple[str, str, int | None]]
    communities: Mapping[int, tuple[str, str | None, int | None]]
    streets: Mapping[int, tuple[str, str | None]]
    workers: Mapping[int, tuple[str, str]]


def agency_responsible(row: TicketRow, places: Places) -> str:
    """Who has the ticket (bot.tickets.display words it): the member of staff,
    at grid level the grid's worker, else the office of its level."""
    grid = places.grids.get(row.grid_id) if row.grid_id is not None else None
    community = places.communities.get(row.community_id) if row.community_id is not None else None
    worker_id = row.assignee_id
    if worker_id is None and row.level == "grid" and grid is not None:
        worker_id = grid[2]
    name, role = (
        places.workers.get(worker_id, (None, None)) if worker_id is not None else (None, None)
    )
    street = places.streets.get(community[2]) if community and community[2] else None
    office = display.office_label(
        row.level,
        community[0] if community else None,
        community[1] if community else None,
        street[0] if street else None,
        street[1] if street else None,
    )
    return display.handler_label(name, role, office)


def address(row: TicketRow, places: Places, shown: Shown) -> str | None:
    """The address as the reader may see it: community and building for the
    public, with unit and room (and the words given) for a full reader; no
    coordinates (they are `lat`/`long`); None when nothing is known."""
    community = places.communities.get(row.community_id) if row.community_id is not None else None
    place = display.Place(
        community=community[0] if community else None,
        building=row.building,
        unit=shown.unit,
        room=shown.room,
        words=row.address_text if shown.full else None,
    )
    return display.address_label(place, with_room=shown.full, missing=None)


def media_url(photos: Iterable[Any]) -> str | None:
    for photo in photos or ():
        if isinstance(photo, str) and photo.lower().startswith(("http://", "https://")):
            return photo
    return None


def service_notice(
    routing_reason: str | None, due_at: datetime | None, zone: ZoneInfo
) -> str | None:
    """Where the ticket went and by when (the routing sentence and the deadline)."""
    parts = [routing_reason] if routing_reason else []
    if due_at is not None:
        parts.append(f"办理时限：{display.staff_time(aware(due_at), zone)}")
    return "。".join(parts) or None


def to_request(
    row: TicketRow,
    places: Places,
    zone: ZoneInfo,
    taxonomy: Taxonomy | None = None,
    reader: Reader = PUBLIC,
) -> dict[str, Any]:
    """One ticket as a GeoReport v2 request (standard fields, then our
    extensions), with what `reader` may see of the resident's part."""
    grid = places.grids.get(row.grid_id) if row.grid_id is not None else None
    community = places.communities.get(row.community_id) if row.community_id is not None else None
    shown = publication.shown(
        reader,
        description=row.description,
        public_summary=row.public_summary,
        unit=row.unit,
        room=row.room,
        lat=row.lat,
        lon=row.lon,
        photos=_photos(row.photos),
        status_notes=row.status_notes,
    )
    request: dict[str, Any] = {
        "service_request_id": row.number,
        "status": STATUS_MAP.get(row.status, "open"),
        "status_notes": shown.status_notes,
        "service_name": display.category_label(row.category_code, taxonomy),
        "service_code": row.category_code,
        "description": shown.description,
        "agency_responsible": agency_responsible(row, places),
        "service_notice": service_notice(row.routing_reason, row.due_at, zone),
        "requested_datetime": w3c(row.created_at, zone),
        "updated_datetime": w3c(row.updated_at, zone),
        "expected_datetime": w3c(row.due_at, zone),
        "address": address(row, places, shown),
        "address_id": None,
        "zipcode": None,
    }
    if shown.lat is not None and shown.lon is not None:
        request["lat"] = float(shown.lat)
        request["long"] = float(shown.lon)
    request["media_url"] = media_url(shown.photos)
    request["grid_code"] = grid[0] if grid else None
    request["community"] = community[0] if community else None
    request["level"] = row.level
    request["channel"] = row.channel
    return request


def _latest_note():
    """The newest note of a member of staff (or the system), as a correlated
    subquery on Ticket: never the resident's own (a withdrawal's reason), what
    the submitting system sent, or the published summary (it is `description`)."""
    event = aliased(TicketEvent)
    return (
        select(event.note)
        .where(
            event.ticket_id == Ticket.id,
            event.note.isnot(None),
            event.type != "assigned",
            event.actor.notlike(SENDER_PREFIX + "%"),
            event.actor.notlike("resident:%"),
            event.actor != Ticket.sender_id,
            event.note.notlike(publication.SUMMARY_NOTE_PREFIX + "%"),
        )
        .order_by(event.at.desc(), event.id.desc())
        .limit(1)
        .correlate(Ticket)
        .scalar_subquery()
    )


_ROW_COLUMNS = (
    Ticket.number,
    Ticket.category_code,
    Ticket.status,
    Ticket.level,
    Ticket.description,
    Ticket.created_at,
    Ticket.updated_at,
    Ticket.due_at,
    Ticket.routing_reason,
    Ticket.community_id,
    Ticket.grid_id,
    Ticket.assignee_id,
    Ticket.building,
    Ticket.unit,
    Ticket.address_text,
    Ticket.lat,
    Ticket.lon,
    # Raw JSON text: most tickets have no photo, and decoding "[]" a thousand
    # times is a measurable part of a 1,000-request answer.
    type_coerce(Ticket.photos, Text).label("photos"),
    Ticket.channel,
    Ticket.room,
    Ticket.public_summary,
)


def _photos(raw: str | Iterable[Any] | None) -> Iterable[Any]:
    """Photos of a row: a list already, or the column's raw JSON text."""
    if not isinstance(raw, str):
        return raw or ()
    if raw == "[]" or not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        return ()
    return tuple(p for p in value if isinstance(p, str)) if isinstance(value, list) else ()


def _by_id(session: Session, id_column: Any, columns: tuple, ids: Iterable[int]) -> dict:
    """{id: (the other columns)} of the rows with these ids (no query for none)."""
    wanted = set(ids)
    if not wanted:
        return {}
    query = select(id_column, *columns).where(id_column.in_(wanted))
    return {row[0]: tuple(row[1:]) for row in session.execute(query)}


def load_places(
    session: Session,
    grid_ids: Iterable[int],
    community_ids: Iterable[int],
    worker_ids: Iterable[int],
) -> Places:
    """The directory entries some tickets refer to (small queries, names only)."""
    grids = _by_id(session, Grid.id, (Grid.code, Grid.name, Grid.worker_id), grid_ids)
    communities = _by_id(
        session,
        Community.id,
        (Community.name, Community.office_name, Community.street_id),
        community_ids,
    )
    streets = _by_id(
        session,
        Street.id,
        (Street.name, Street.office_name),
        (c[2] for c in communities.values() if c[2] is not None),
    )
    workers = _by_id(
        session,
        Worker.id,
        (Worker.name, Worker.role),
        set(worker_ids) | {g[2] for g in grids.values() if g[2] is not None},
    )
    return Places(grids=grids, communities=communities, streets=streets, workers=workers)


def find_requests(
    session: Session,
    query: RequestQuery,
    *,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
    reader: Reader = PUBLIC,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """GET requests.json: the tickets `query` selects that `reader` may see,
    newest first. A full reader's read is recorded (in the caller's
    transaction, so an answer given is an answer recorded).

    The page of ticket ids is chosen first, so that the latest-note subquery
    runs only for the tickets answered, not for every ticket in the window.
    """
    zone = zone or local_zone()
    codes = publication.readable_codes(reader, taxonomy)
    page = select(Ticket.id).where(Ticket.category_code.in_(codes))
    if query.ids:
        page = page.where(Ticket.number.in_(query.ids))
    else:
        if query.start is not None:
            page = page.where(Ticket.created_at >= query.start)
        if query.end is not None:
            page = page.where(Ticket.created_at <= query.end)
        if query.service_codes:
            page = page.where(Ticket.category_code.in_(query.service_codes))
        if query.statuses:
            raw = [s for s, public in STATUS_MAP.items() if public in query.statuses]
            page = page.where(Ticket.status.in_(raw))
    order = (Ticket.created_at.desc(), Ticket.id.desc())
    chosen = (
        page.order_by(*order).offset((query.page - 1) * query.page_size).limit(query.page_size)
    ).subquery()
    stmt = (
        select(*_ROW_COLUMNS, _latest_note().label("status_notes"))
        .join(chosen, Ticket.id == chosen.c.id)
        .order_by(*order)
    )
    # Columns in TicketRow's order (photos as raw JSON text).
    rows = [TicketRow._make(r) for r in session.execute(stmt)]
    places = load_places(
        session,
        (r.grid_id for r in rows if r.grid_id is not None),
        (r.community_id for r in rows if r.community_id is not None),
        (r.assignee_id for r in rows if r.assignee_id is not None),
    )
    found = [to_request(r, places, zone, taxonomy, reader) for r in rows]
    if reader.full:
        access_log.record(
            session,
            reader.actor or "apikey:?",
            access_log.OPEN311_FULL_READ,
            target=",".join(r.number for r in rows)[: access_log.MAX_TARGET] or None,
            actor_name=reader.name,
            detail=_describe(query),
            now=now,
        )
    return found


def _describe(query: RequestQuery) -> str:
    """The read's arguments, for the access record."""
    parts = [f"{name}={value}" for name, value in vars(query).items() if value not in ((), None)]
    return "; ".join(str(p) for p in parts)


def reader_for(session: Session, token: str | None, now: datetime | None = None) -> Reader:
    """Who reads, by the `api_key` sent: none or a key without the read scope
    is the public; a key that is not (or no longer) one of ours is 403, as
    for POST."""
    if token is None or not token.strip():
        return PUBLIC
    key = apikeys.verify_key(session, token, now, scope=apikeys.READ)
    if key is not None:
        return publication.full_reader(key.prefix, key.name)
    if apikeys.verify_key(session, token, now, scope=apikeys.WRITE) is not None:
        return PUBLIC
    raise Open311Error.of(403, "api_key is not valid")


def get_request(
    session: Session,
    request_id: str,
    *,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
    reader: Reader = PUBLIC,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """GET requests/{id}.json: a one-element list, or Open311Error 404 (also
    for a ticket this reader may not see: it looks absent)."""
    found = find_requests(
        session,
        RequestQuery(ids=(request_id,)),
        zone=zone,
        taxonomy=taxonomy,
        reader=reader,
        now=now,
    )
    if not found:
        raise Open311Error.of(404, f"service_request_id {request_id[:50]} was not found")
    return found
