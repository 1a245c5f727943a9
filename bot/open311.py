"""Open311 GeoReport v2 on our tickets (no HTTP here; bot/web/views/open311.py serves it).

Specification: http://wiki.open311.org/GeoReport_v2 (JSON format only; one
jurisdiction, so `jurisdiction_id` is ignored as the specification allows).
Choices where the specification leaves room, all documented here:

- Services are the categories of taxonomy.yml (not the internal HANDOFF
  call-back requests, which are not listed, accepted or shown). `metadata` is
  false for all of them; `GET services/{code}.json` of a listed service
  answers 200 with an empty `attributes` list (the definition exists and is
  empty), an unlisted code 404.
- `service_request_id` is the ticket number residents and workers see
  ("20261127-0007"), a string.
- Status: open/accepted/escalated -> "open"; resolved/closed/cancelled ->
  "closed". `status_notes` is the latest note of a handler (routing notes
  and what the submitting system sent are left out).
- Times are ISO 8601 in local time with the offset (2026-11-27T10:00:00+08:00);
  `expected_datetime` is the ticket's deadline.
- `address` is community + building + unit (the room is left out: requests
  are public and a room pins down a household); `lat`/`long` only when known;
  `media_url` is the first photo that is an http(s) URL (WeChat media ids
  are not URLs); `address_id` and `zipcode` are null.
- Extension fields on every request: `grid_code`, `community`, `level`
  (grid/community/street) and `channel` (wechat, open311 ...).
- GET requests: `service_request_id` (comma-separated) overrides every other
  argument; `service_code` and `status` take comma-separated lists;
  `start_date`/`end_date` are W3C dates (a date alone means local midnight,
  or the end of that day for `end_date`; a time needs a zone) and may not span
  more than 90 days; with one of them the window is the 90 days after the
  start or before the end, with none the last 90 days. Newest first, at most
  1,000; `page`/`page_size` (extension, page_size <= 1,000) page further.
  An unknown service_code in a filter matches nothing (no error).
- POST: the key comes as `api_key` (form, JSON body or query string). A
  missing, unknown or revoked key is 403. Problems with the fields are 400,
  all listed at once; an unknown service_code alone is 404 (with other
  problems it is listed among them, and the answer is 400). Location: lat +
  long, address_string or address_id (a grid code, else read as an address).
  A building found in the address wins over a polygon hit of lat/long, which
  wins over a community-only address; an address nobody can place still opens
  a ticket, which the office sorts out (as chat tickets do after the resident
  could not give one). Contact fields go into a note on the ticket, never
  into the public description. An `Idempotency-Key` header (or an
  `idempotency_key` field, extension) makes a retried POST return the same
  ticket.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import Session, aliased

from bot import apikeys
from bot.nlu.normalise import normalise
from bot.routing.locator import Located, Locator, get_locator
from bot.settings import get_settings
from bot.store.models import Community, Grid, Street, Ticket, TicketEvent, Worker, aware
from bot.taxonomy import Category, Taxonomy, get_taxonomy
from bot.tickets import display, service

CHANNEL = "open311"
SENDER_PREFIX = "open311:"
OPEN_STATUSES = ("open", "accepted", "escalated")
CLOSED_STATUSES = ("resolved", "closed", "cancelled")
STATUS_MAP = {**{s: "open" for s in OPEN_STATUSES}, **{s: "closed" for s in CLOSED_STATUSES}}

WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000
MAX_IDS = 1000
MAX_DESCRIPTION = 4000
MAX_ADDRESS = 500
MAX_FIELD = 200  # names, phone, email, device and account ids
MAX_URL = 2000
MAX_IDEMPOTENCY_KEY = service.MAX_ID

GROUPS = {"complaint": "投诉", "dispute": "纠纷调解", "service": "便民服务", "proposal": "居民议事"}

CONTACT_FIELDS = ("first_name", "last_name", "phone", "email", "device_id", "account_id")
_CONTACT_LABELS = {
    "phone": "电话",
    "email": "邮箱",
    "device_id": "设备",
    "account_id": "账号",
}


# -- errors ---------------------------------------------------------------------


def error(code: int, description: str) -> dict[str, Any]:
    """One entry of the specification's error list."""
    return {"code": code, "description": description}


class Open311Error(Exception):
    """An answer of the specification's error form: HTTP `status`, body `errors`."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e["description"]) for e in errors))
        self.status = status
        self.errors = errors

    @classmethod
    def of(cls, status: int, description: str) -> Open311Error:
        return cls(status, [error(status, description)])


@dataclass(frozen=True)
class Outcome:
    """What to answer: HTTP status and JSON body (a list, as every answer is)."""

    status: int
    body: list[dict[str, Any]]


def dumps(body: Any) -> str:
    """JSON text of an answer: UTF-8 Chinese as is, `<`, `>` and `&` escaped so
    that text sent by anyone can never become markup, even when sniffed as HTML."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- services -------------------------------------------------------------------


def public_categories(taxonomy: Taxonomy | None = None) -> tuple[Category, ...]:
    """The Open311 services: the taxonomy's categories (internal ones excluded)."""
    return (taxonomy or get_taxonomy()).categories


def _category(code: str | None, taxonomy: Taxonomy | None = None) -> Category | None:
    return next((c for c in public_categories(taxonomy) if c.code == code), None)


def keywords(category: Category) -> str:
    """Comma-separated, as the specification wants: the label, the Chinese terms
    the `covers` text names (低保, 回迁选房 ...) and the group."""
    words = [category.label, *re.findall(r"[\u4e00-\u9fff]+", category.covers)]
    words.append(GROUPS.get(category.kind, category.kind))
    return ", ".join(dict.fromkeys(words))


def service_entry(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.label,
        "description": category.covers,
        "metadata": False,
        "type": "realtime",
        "keywords": keywords(category),
        "group": GROUPS.get(category.kind, category.kind),
    }


def services(taxonomy: Taxonomy | None = None) -> list[dict[str, Any]]:
    """GET services.json."""
    return [service_entry(c) for c in public_categories(taxonomy)]


def service_definition(code: str, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """GET services/{code}.json: no service of ours has attributes."""
    if _category(code, taxonomy) is None:
        raise Open311Error.of(404, f"service_code {code} was not found")
    return {"service_code": code, "attributes": []}


# -- dates ----------------------------------------------------------------------


def local_zone(name: str | None = None) -> ZoneInfo:
    return ZoneInfo(name or get_settings().timezone)


def w3c(value: datetime | None, zone: ZoneInfo) -> str | None:
    """2026-11-27T10:00:00+08:00 (local time with its offset), or None."""
    if value is None:
        return None
    return aware(value).astimezone(zone).isoformat(timespec="seconds")


_W3C = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(?P<zone>Z|[+\- ]\d{2}:\d{2})?)?$"
)


def parse_w3c(value: str, zone: ZoneInfo, end_of_day: bool = False) -> datetime:
    """A W3C (ISO 8601 subset) date or date-time as an aware datetime.

    A date alone is local midnight (or the last moment of that day when
    `end_of_day`); a time must come with `Z` or an offset. A space where the
    offset's `+` belongs is read as `+` (an unencoded `+` in a query string).
    Raises ValueError.
    """
    match = _W3C.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a W3C date-time such as 2026-11-27T10:00:00+08:00")
    day = date.fromisoformat(match["date"])
    if match["time"] is None:
        start = datetime.combine(day, time(0), tzinfo=zone)
        return start + timedelta(days=1, microseconds=-1) if end_of_day else start
    if match["zone"] is None:
        raise ValueError(f"{value!r} has no time zone (add Z or an offset such as +08:00)")
    offset = match["zone"]
    offset = "+00:00" if offset == "Z" else offset.replace(" ", "+")
    clock = match["time"]
    if clock.count(":") == 1:
        clock += ":00"
    if "." in clock:  # fromisoformat (3.10) wants 3 or 6 digits
        whole, fraction = clock.split(".")
        clock = f"{whole}.{fraction.ljust(6, '0')}"
    return datetime.fromisoformat(f"{match['date']}T{clock}{offset}")


# -- GET requests: filters --------------------------------------------------------


@dataclass(frozen=True)
class RequestQuery:
    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # "open" / "closed"
    start: datetime | None = None
    end: datetime | None = None
    page: int = 1
    page_size: int = MAX_REQUESTS


def _collect(pairs: Iterable[tuple[str, Any]]) -> dict[str, list[str]]:
    """Repeated arguments and comma lists alike; empty values count as not given."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if not isinstance(value, str):
            continue
        for part in value.split(","):
            part = part.strip()
            if part:
                values.setdefault(name, []).append(part)
    return values


def _positive_int(name: str, raw: list[str] | None, default: int, maximum: int) -> int:
    if not raw:
        return default
    text = raw[-1]
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise ValueError(f"{name} must be a whole number from 1 to {maximum}")
    return int(text)


def parse_query(
    pairs: Iterable[tuple[str, Any]], *, now: datetime | None = None, zone: ZoneInfo | None = None
) -> RequestQuery:
    """The arguments of GET requests.json; Open311Error (400) lists what is wrong."""
    now = aware(now)
    zone = zone or local_zone()
    pairs = list(pairs)
    if any(isinstance(v, str) and "\x00" in v for _, v in pairs):
        raise Open311Error.of(400, "the query contains a NUL character")
    values = _collect(pairs)
    errors: list[dict[str, Any]] = []

    try:
        page = _positive_int("page", values.get("page"), 1, 1_000_000)
    except ValueError as exc:
        errors.append(error(400, str(exc)))
        page = 1
    try:
        page_size = _positive_int("page_size", values.get("page_size"), MAX_REQUESTS, MAX_REQUESTS)
    except ValueError as exc:
        errors.append(error(400, str(exc)))
        page_size = MAX_REQUESTS

    ids = tuple(dict.fromkeys(values.get("service_request_id", ())))
    if ids:
        # The specification: service_request_id overrides all other arguments.
        if len(ids) > MAX_IDS:
            errors.append(error(400, f"at most {MAX_IDS} service_request_id values at once"))
        if errors:
            raise Open311Error(400, errors)
        return RequestQuery(ids=ids, page=page, page_size=page_size)

    statuses = tuple(dict.fromkeys(values.get("status", ())))
    for status in statuses:
        if status not in ("open", "closed"):
            errors.append(error(400, f"status must be open or closed, not {status[:50]!r}"))

    start = end = None
    end_is_date = False
    for name in ("start_date", "end_date"):
        raw = values.get(name)
        if not raw:
            continue
        if len(raw) > 1:
            errors.append(error(400, f"{name} given more than once"))
            continue
        try:
            parsed = parse_w3c(raw[0], zone, end_of_day=(name == "end_date"))
        except ValueError as exc:
            errors.append(error(400, f"{name}: {exc}"))
            continue
        if name == "start_date":
            start = parsed
        else:
            end = parsed
            end_is_date = "T" not in raw[0]
    if start is not None and end is not None:
        if end < start:
            errors.append(error(400, "end_date is before start_date"))
        # A date-only end means the whole day: 2026-08-29 .. 2026-11-27 is 90 days.
        elif end - start > WINDOW + (timedelta(days=1) if end_is_date else timedelta(0)):
            errors.append(error(400, "start_date and end_date may not span more than 90 days"))
    if errors:
        raise Open311Error(400, errors)

    if start is None and end is None:
        start = now - WINDOW
    elif start is None:
        start = end - WINDOW
    elif end is None:
        end = start + WINDOW
    return RequestQuery(
        service_codes=tuple(dict.fromkeys(values.get("service_code", ()))),
        statuses=statuses,
        start=start,
        end=end,
        page=page,
        page_size=page_size,
    )


# -- tickets as requests ------------------------------------------------------------


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


def address(row: TicketRow, places: Places) -> str | None:
    """The public address: no room (a room pins down a household), no coordinates
    (they are `lat`/`long`); None when nothing is known."""
    community = places.communities.get(row.community_id) if row.community_id is not None else None
    place = display.Place(
        community=community[0] if community else None,
        building=row.building,
        unit=row.unit,
        words=row.address_text,
    )
    return display.address_label(place, with_room=False, missing=None)


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
) -> dict[str, Any]:
    """One ticket as a GeoReport v2 request (standard fields, then our extensions)."""
    grid = places.grids.get(row.grid_id) if row.grid_id is not None else None
    community = places.communities.get(row.community_id) if row.community_id is not None else None
    request: dict[str, Any] = {
        "service_request_id": row.number,
        "status": STATUS_MAP.get(row.status, "open"),
        "status_notes": row.status_notes or None,
        "service_name": display.category_label(row.category_code, taxonomy),
        "service_code": row.category_code,
        "description": row.description or None,
        "agency_responsible": agency_responsible(row, places),
        "service_notice": service_notice(row.routing_reason, row.due_at, zone),
        "requested_datetime": w3c(row.created_at, zone),
        "updated_datetime": w3c(row.updated_at, zone),
        "expected_datetime": w3c(row.due_at, zone),
        "address": address(row, places),
        "address_id": None,
        "zipcode": None,
    }
    if row.lat is not None and row.lon is not None:
        request["lat"] = float(row.lat)
        request["long"] = float(row.lon)
    request["media_url"] = media_url(_photos(row.photos))
    request["grid_code"] = grid[0] if grid else None
    request["community"] = community[0] if community else None
    request["level"] = row.level
    request["channel"] = row.channel
    return request


def _latest_note():
    """The newest note of a handler, as a correlated subquery on Ticket."""
    event = aliased(TicketEvent)
    return (
        select(event.note)
        .where(
            event.ticket_id == Ticket.id,
            event.note.isnot(None),
            event.type != "assigned",
            event.actor.notlike(SENDER_PREFIX + "%"),
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


def load_places(
    session: Session,
    grid_ids: Iterable[int],
    community_ids: Iterable[int],
    worker_ids: Iterable[int],
) -> Places:
    """The directory entries some tickets refer to (small queries, names only)."""
    grid_ids, community_ids = set(grid_ids), set(community_ids)
    grids = (
        {
            gid: (code, name, worker_id)
            for gid, code, name, worker_id in session.execute(
                select(Grid.id, Grid.code, Grid.name, Grid.worker_id).where(Grid.id.in_(grid_ids))
            )
        }
        if grid_ids
        else {}
    )
    communities = (
        {
            cid: (name, office, street_id)
            for cid, name, office, street_id in session.execute(
                select(
                    Community.id, Community.name, Community.office_name, Community.street_id
                ).where(Community.id.in_(community_ids))
            )
        }
        if community_ids
        else {}
    )
    street_ids = {c[2] for c in communities.values() if c[2] is not None}
    streets = (
        {
            sid: (name, office)
            for sid, name, office in session.execute(
                select(Street.id, Street.name, Street.office_name).where(Street.id.in_(street_ids))
            )
        }
        if street_ids
        else {}
    )
    wanted = set(worker_ids) | {g[2] for g in grids.values() if g[2] is not None}
    workers = (
        {
            wid: (name, role)
            for wid, name, role in session.execute(
                select(Worker.id, Worker.name, Worker.role).where(Worker.id.in_(wanted))
            )
        }
        if wanted
        else {}
    )
    return Places(grids=grids, communities=communities, streets=streets, workers=workers)


def find_requests(
    session: Session,
    query: RequestQuery,
    *,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[dict[str, Any]]:
    """GET requests.json: the tickets `query` selects, newest first.

    The page of ticket ids is chosen first, so that the latest-note subquery
    runs only for the tickets answered, not for every ticket in the window.
    """
    zone = zone or local_zone()
    codes = [c.code for c in public_categories(taxonomy)]
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
    return [to_request(r, places, zone, taxonomy) for r in rows]


def get_request(
    session: Session,
    request_id: str,
    *,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[dict[str, Any]]:
    """GET requests/{id}.json: a one-element list, or Open311Error 404."""
    found = find_requests(session, RequestQuery(ids=(request_id,)), zone=zone, taxonomy=taxonomy)
    if not found:
        raise Open311Error.of(404, f"service_request_id {request_id[:50]} was not found")
    return found


# -- POST requests ----------------------------------------------------------------


@dataclass(frozen=True)
class NewRequest:
    service_code: str
    lat: float | None = None
    long: float | None = None
    address_string: str | None = None
    address_id: str | None = None
    description: str = ""
    media_url: str | None = None
    idempotency_key: str | None = None
    contact: tuple[tuple[str, str], ...] = ()  # (field, value) of CONTACT_FIELDS given


def form_fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """First value of each form field (files and other non-text values ignored)."""
    fields: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(value, str) and name not in fields:
            fields[name] = value
    return fields


def json_fields(body: Any) -> dict[str, str]:
    """A JSON body as form fields: an object of strings and numbers."""
    if not isinstance(body, dict):
        raise Open311Error.of(400, "the JSON body must be an object of fields")
    fields: dict[str, str] = {}
    for name, value in body.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, (int, float)):
            value = repr(value) if isinstance(value, float) else str(value)
        if isinstance(value, str):
            fields[str(name)] = value
        elif not str(name).startswith("attribute"):
            raise Open311Error.of(400, f"{str(name)[:50]} must be a string or a number")
    return fields


def _text(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _coordinate(fields: Mapping[str, str], name: str, limit: float) -> float:
    raw = _text(fields, name) or ""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw[:30]!r}") from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ValueError(f"{name} must be between -{limit:g} and {limit:g}")
    return value


def parse_post(fields: Mapping[str, str], taxonomy: Taxonomy | None = None) -> NewRequest:
    """Check the fields of POST requests.json; Open311Error lists every problem."""
    errors: list[dict[str, Any]] = []
    not_found: dict[str, Any] | None = None

    for name, value in fields.items():
        if "\x00" in value:
            errors.append(error(400, f"{name[:50]} contains a NUL character"))
    if errors:
        raise Open311Error(400, errors)

    code = _text(fields, "service_code")
    if code is None:
        errors.append(error(400, "service_code was not provided"))
    elif _category(code, taxonomy) is None:
        not_found = error(404, f"service_code {code[:50]} was not found")

    lat = lon = None
    has_lat, has_long = _text(fields, "lat") is not None, _text(fields, "long") is not None
    if has_lat != has_long:
        errors.append(error(400, "lat and long must be sent together"))
    elif has_lat:
        try:
            lat = _coordinate(fields, "lat", 90)
            lon = _coordinate(fields, "long", 180)
        except ValueError as exc:
            errors.append(error(400, str(exc)))
    address_string = _text(fields, "address_string")
    address_id = _text(fields, "address_id")
    if address_string is not None and len(address_string) > MAX_ADDRESS:
        errors.append(error(400, f"address_string longer than {MAX_ADDRESS} characters"))
    if address_id is not None and len(address_id) > MAX_FIELD:
        errors.append(error(400, f"address_id longer than {MAX_FIELD} characters"))
    if not (has_lat or has_long or address_string or address_id):
        errors.append(error(400, "location required: lat and long, address_string or address_id"))

    description = (fields.get("description") or "").strip()
    if len(description) > MAX_DESCRIPTION:
        errors.append(
            error(
                400,
                f"description longer than {MAX_DESCRIPTION:,} characters ({len(description):,})",
            )
        )

    media = _text(fields, "media_url")
    if media is not None:
        if len(media) > MAX_URL:
            errors.append(error(400, f"media_url longer than {MAX_URL} characters"))
        elif not media.lower().startswith(("http://", "https://")) or any(
            c.isspace() for c in media
        ):
            errors.append(error(400, "media_url must be an http:// or https:// URL"))

    contact = []
    for name in CONTACT_FIELDS:
        value = _text(fields, name)
        if value is None:
            continue
        if len(value) > MAX_FIELD:
            errors.append(error(400, f"{name} longer than {MAX_FIELD} characters"))
        contact.append((name, value))

    key = _text(fields, "idempotency_key")
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        errors.append(error(400, f"Idempotency-Key longer than {MAX_IDEMPOTENCY_KEY} characters"))

    if errors:
        raise Open311Error(400, errors + ([not_found] if not_found else []))
    if not_found is not None:
        raise Open311Error(404, [not_found])
    assert code is not None
    return NewRequest(
        service_code=code,
        lat=lat,
        long=lon,
        address_string=address_string,
        address_id=address_id,
        description=description,
        media_url=media,
        idempotency_key=key,
        contact=tuple(contact),
    )


def locate(locator: Locator, new: NewRequest) -> Located:
    """Where a request is, by the same Locator the chat uses (see module docstring)."""
    by_text = (
        locator.locate_text(normalise(new.address_string, max_chars=None))
        if (new.address_string)
        else None
    )
    by_id = None
    if new.address_id:
        grid = locator.grid(new.address_id)
        if grid is not None:
            by_id = Located(
                community=grid.community, grid=grid.code, level="grid", address_text=new.address_id
            )
        else:
            by_id = locator.locate_text(normalise(new.address_id, max_chars=None))
    by_point = locator.locate_point(new.lat, new.long) if new.lat is not None else None

    written = [x for x in (by_text, by_id) if x is not None]
    chosen = next((x for x in written if x.level == "grid"), None)
    if chosen is None and by_point is not None and by_point.level == "grid":
        chosen = by_point
    if chosen is None:
        chosen = next((x for x in written if x.community is not None), None)
    if chosen is None:
        chosen = written[0] if written else (by_point or Located())
    return replace(
        chosen,
        lat=new.lat if new.lat is not None else chosen.lat,
        lon=new.long if new.long is not None else chosen.lon,
        address_text=chosen.address_text or new.address_string or new.address_id,
    )


def contact_note(contact: tuple[tuple[str, str], ...]) -> str:
    """The submitter's contact details as a note for the handler (Chinese)."""
    values = dict(contact)
    name = "".join(v for v in (values.get("last_name"), values.get("first_name")) if v)
    parts = [f"姓名：{name}"] if name else []
    parts += [
        f"{label}：{values[field]}" for field, label in _CONTACT_LABELS.items() if field in values
    ]
    return "Open311提交人 " + "；".join(parts)


def submit_request(
    session: Session,
    fields: Mapping[str, str],
    *,
    now: datetime | None = None,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
) -> Outcome:
    """POST requests.json in the caller's transaction: check the key, then the
    fields, then open the ticket exactly as a chat report opens one.

    Errors after the key was accepted are returned, not raised, so that the
    key's last use is still recorded when the caller commits.
    """
    now = aware(now)
    zone = zone or local_zone()
    token = _text(fields, "api_key")
    if token is None:
        return Outcome(403, [error(403, "api_key was not provided")])
    key = apikeys.verify_key(session, token, now)
    if key is None:
        return Outcome(
            403, [error(403, "Invalid api_key received -- can't proceed with create_request.")]
        )
    try:
        new = parse_post(fields, taxonomy)
    except Open311Error as exc:
        return Outcome(exc.status, exc.errors)

    sender = f"{SENDER_PREFIX}{key.prefix}"
    existing = None
    if new.idempotency_key:
        existing = session.execute(
            select(Ticket).where(
                Ticket.sender_id == sender, Ticket.message_id == new.idempotency_key
            )
        ).scalar_one_or_none()
    if existing is not None:
        ticket = existing
    else:
        ticket = service.open_ticket(
            session,
            sender_id=sender,
            channel=CHANNEL,
            message_id=new.idempotency_key,
            category_code=new.service_code,
            description=new.description,
            original_text=new.description or None,
            location=locate(get_locator(session), new),
            photos=[new.media_url] if new.media_url else [],
            actor=sender,
            now=now,
            taxonomy=taxonomy,
        )
        if new.contact:
            service.add_note(
                session,
                ticket,
                actor=sender,
                note=contact_note(new.contact),
                data={"open311_contact": dict(new.contact)},
                now=now,
            )
    return Outcome(
        200,
        [
            {
                "service_request_id": ticket.number,
                "service_notice": service_notice(ticket.routing_reason, ticket.due_at, zone),
                "account_id": None,
            }
        ],
    )
