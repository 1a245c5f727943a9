"""Reading what clients send: GET filters, POST fields, W3C dates.

Every problem is listed at once, as the specification's error list
(bot.open311.answers.Open311Error).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.open311.answers import Open311Error, error
from bot.open311.mapping import local_zone, public_category
from bot.store.models import aware
from bot.taxonomy import Taxonomy
from bot.tickets import service

WINDOW = timedelta(days=90)
MAX_REQUESTS = 1000
MAX_IDS = 1000
MAX_DESCRIPTION = 4000
MAX_ADDRESS = 500
MAX_FIELD = 200  # names, phone, email, device and account ids
MAX_URL = 2000
MAX_IDEMPOTENCY_KEY = service.MAX_ID

CONTACT_FIELDS = ("first_name", "last_name", "phone", "email", "device_id", "account_id")


# -- dates ----------------------------------------------------------------------


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


def field_text(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _coordinate(fields: Mapping[str, str], name: str, limit: float) -> float:
    raw = field_text(fields, name) or ""
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

    code = field_text(fields, "service_code")
    if code is None:
        errors.append(error(400, "service_code was not provided"))
    elif public_category(code, taxonomy) is None:
        not_found = error(404, f"service_code {code[:50]} was not found")

    lat = lon = None
    has_lat, has_long = (
        field_text(fields, "lat") is not None,
        field_text(fields, "long") is not None,
    )
    if has_lat != has_long:
        errors.append(error(400, "lat and long must be sent together"))
    elif has_lat:
        try:
            lat = _coordinate(fields, "lat", 90)
            lon = _coordinate(fields, "long", 180)
        except ValueError as exc:
            errors.append(error(400, str(exc)))
    address_string = field_text(fields, "address_string")
    address_id = field_text(fields, "address_id")
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

    media = field_text(fields, "media_url")
    if media is not None:
        if len(media) > MAX_URL:
            errors.append(error(400, f"media_url longer than {MAX_URL} characters"))
        elif not media.lower().startswith(("http://", "https://")) or any(
            c.isspace() for c in media
        ):
            errors.append(error(400, "media_url must be an http:// or https:// URL"))

    contact = []
    for name in CONTACT_FIELDS:
        value = field_text(fields, name)
        if value is None:
            continue
        if len(value) > MAX_FIELD:
            errors.append(error(400, f"{name} longer than {MAX_FIELD} characters"))
        contact.append((name, value))

    key = field_text(fields, "idempotency_key")
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
