"""POST requests.json: another city system opens a ticket, located and routed
exactly as a chat report is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import apikeys
from bot.nlu.normalise import normalise
from bot.open311.answers import ERRORS, REQUESTS, Answer, Open311Error, error
from bot.open311.mapping import CHANNEL, CONTACT_NOTE_PREFIX, SENDER_PREFIX, local_zone
from bot.open311.parsing import NewRequest, field_text, parse_post
from bot.open311.requests import service_notice
from bot.routing.locator import Located, Locator, get_locator
from bot.store.models import Ticket, aware
from bot.taxonomy import Taxonomy
from bot.tickets import service

_CONTACT_LABELS = {
    "phone": "电话",
    "email": "邮箱",
    "device_id": "设备",
    "account_id": "账号",
}


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
    return f"{CONTACT_NOTE_PREFIX} " + "；".join(parts)


def submit_request(
    session: Session,
    fields: Mapping[str, str],
    *,
    now: datetime | None = None,
    zone: ZoneInfo | None = None,
    taxonomy: Taxonomy | None = None,
) -> Answer:
    """POST requests.json in the caller's transaction: check the key, then the
    fields, then open the ticket exactly as a chat report opens one.

    Errors after the key was accepted are returned, not raised, so that the
    key's last use is still recorded when the caller commits.
    """
    now = aware(now)
    zone = zone or local_zone()
    token = field_text(fields, "api_key")
    if token is None:
        return Answer([error(403, "api_key was not provided")], ERRORS, 403)
    key = apikeys.verify_key(session, token, now)
    if key is None:
        return Answer(
            [error(403, "Invalid api_key received -- can't proceed with create_request.")],
            ERRORS,
            403,
        )
    try:
        new = parse_post(fields, taxonomy)
    except Open311Error as exc:
        return exc.answer()

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
    return Answer(
        [
            {
                "service_request_id": ticket.number,
                "service_notice": service_notice(ticket.routing_reason, ticket.due_at, zone),
                "account_id": None,
            }
        ],
        REQUESTS,
    )
