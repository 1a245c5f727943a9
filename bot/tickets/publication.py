"""What of a ticket may be published, and to whom: the one home of that decision.

Two readers exist. The public (no key, or a key without the read scope) sees
only tickets of categories taxonomy.yml marks `public: true`, and of them a
coarse record: category, community and building, status, dates, the staff's
notes, and the resident's matter only as a summary a member of staff
published (`Ticket.public_summary`), never their own words, room, unit,
coordinates, photos or contact. Another city system whose API key has the
read scope sees the full record of every category; each such read is
recorded (bot.access_log).

Every format of the Open311 answer (JSON, XML) is made from the record
`bot.open311.requests.to_request` builds with `shown()`; nothing else decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.privacy.masking import mask
from bot.taxonomy import Taxonomy, get_taxonomy

MAX_SUMMARY = 500
# A published summary is recorded in the ticket's history as a note with this
# prefix; such notes are the summary, not a handler's status note.
SUMMARY_NOTE_PREFIX = "公开摘要："


@dataclass(frozen=True)
class Reader:
    """Who reads: the public, or a system with a read key (`actor` apikey:prefix)."""

    full: bool = False
    actor: str | None = None
    name: str | None = None


PUBLIC = Reader()


def full_reader(prefix: str, name: str) -> Reader:
    return Reader(full=True, actor=f"apikey:{prefix}", name=name)


def is_public_category(code: str | None, taxonomy: Taxonomy | None = None) -> bool:
    """Does taxonomy.yml allow tickets of this category in public? (Internal
    categories such as HANDOFF never are.)"""
    taxonomy = taxonomy or get_taxonomy()
    return any(c.code == code and c.public for c in taxonomy.categories)


def readable_codes(reader: Reader, taxonomy: Taxonomy | None = None) -> list[str]:
    """The category codes whose tickets this reader may see at all."""
    taxonomy = taxonomy or get_taxonomy()
    return [c.code for c in taxonomy.categories if reader.full or c.public]


@dataclass(frozen=True)
class Shown:
    """The resident's part of a record as this reader may see it."""

    full: bool  # everything (a read key); else the public's coarse record
    description: str | None
    status_notes: str | None  # the staff's latest note
    unit: str | None
    room: str | None
    lat: float | None
    lon: float | None
    photos: tuple[Any, ...]


def shown(
    reader: Reader,
    *,
    description: str | None,
    public_summary: str | None,
    unit: str | None,
    room: str | None,
    lat: float | None,
    lon: float | None,
    photos: Iterable[Any],
    status_notes: str | None = None,
) -> Shown:
    """The full reader gets everything; the public the published summary, the
    staff's note with any phone, ID or room number masked (staff type them in
    too), and nothing that pins down a household."""
    if reader.full:
        return Shown(
            True,
            description or None,
            status_notes or None,
            unit,
            room,
            lat,
            lon,
            tuple(photos or ()),
        )
    summary = (public_summary or "").strip() or None
    return Shown(False, summary, mask(status_notes) or None, None, None, None, None, ())


def clean_summary(text: str) -> str:
    """A summary as staff typed it, checked (ValueError in Chinese when unusable)."""
    text = " ".join((text or "").split())
    if len(text) > MAX_SUMMARY:
        raise ValueError(f"公开摘要太长了（最多{MAX_SUMMARY}字）。")
    return text
