"""How our tickets map onto Open311: statuses, public categories, times, senders."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

from bot.settings import get_settings
from bot.store.models import aware
from bot.taxonomy import Category, Taxonomy, get_taxonomy

CHANNEL = "open311"
SENDER_PREFIX = "open311:"
# The note with the submitter's contact details (bot.open311.submit), never public.
CONTACT_NOTE_PREFIX = "Open311提交人"
OPEN_STATUSES = ("open", "accepted", "escalated")
CLOSED_STATUSES = ("resolved", "closed", "cancelled")
STATUS_MAP = {**{s: "open" for s in OPEN_STATUSES}, **{s: "closed" for s in CLOSED_STATUSES}}


def public_categories(taxonomy: Taxonomy | None = None) -> tuple[Category, ...]:
    """The Open311 services: the taxonomy's categories (internal ones excluded)."""
    return (taxonomy or get_taxonomy()).categories


def public_category(code: str | None, taxonomy: Taxonomy | None = None) -> Category | None:
    return next((c for c in public_categories(taxonomy) if c.code == code), None)


def local_zone(name: str | None = None) -> ZoneInfo:
    return ZoneInfo(name or get_settings().timezone)


def w3c(value: datetime | None, zone: ZoneInfo) -> str | None:
    """2026-11-27T10:00:00+08:00 (local time with its offset), or None."""
    if value is None:
        return None
    return aware(value).astimezone(zone).isoformat(timespec="seconds")


def is_contact_note(event: Any) -> ColumnElement:
    """SQL condition on a TicketEvent (class or alias): the note holding the
    submitter's contact details, which is never public (not a status note,
    not an update)."""
    return and_(
        event.type == "note",
        event.actor.like(SENDER_PREFIX + "%"),
        event.note.like(CONTACT_NOTE_PREFIX + "%"),
    )
