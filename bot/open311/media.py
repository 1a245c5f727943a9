"""`media_url`: the ticket's first public photo, served by our web app.

A photo is public when a member of staff took it (`source` worker, e.g. the
repair done) on a ticket of an Open311 category: residents' own photos may
show their homes and faces and never leave the worker's page
(bot.tickets.photos). The public file is `/open311/v2/media/{id}.{ext}`; any
other id (a resident's photo, an internal category, a missing file) is 404.
A request that another system posted with a `media_url` keeps that URL on the
ticket, shown while the ticket has no public photo of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.open311.mapping import public_categories
from bot.store.models import Ticket, TicketPhoto
from bot.taxonomy import Taxonomy
from bot.tickets.photos import PhotoFile, PhotoStore

PATH = "/open311/v2/media"
PUBLIC_SOURCES = ("worker",)


def media_path(photo_id: int, storage_key: str) -> str:
    """The public address of a photo (its store key ends with the type's extension)."""
    return f"{PATH}/{photo_id}.{storage_key.rsplit('.', 1)[-1]}"


def first_public_photos(session: Session, numbers: Iterable[str]) -> dict[str, str]:
    """{ticket number: path of its first public photo} for those that have one."""
    wanted = set(numbers)
    if not wanted:
        return {}
    rows = session.execute(
        select(Ticket.number, TicketPhoto.id, TicketPhoto.storage_key)
        .join(Ticket, Ticket.id == TicketPhoto.ticket_id)
        .where(Ticket.number.in_(wanted), TicketPhoto.source.in_(PUBLIC_SOURCES))
        .order_by(TicketPhoto.created_at, TicketPhoto.id)
    )
    first: dict[str, str] = {}
    for number, photo_id, key in rows:
        first.setdefault(number, media_path(photo_id, key))
    return first


def public_photo_file(
    session: Session,
    photo_id: int,
    extension: str,
    store: PhotoStore,
    taxonomy: Taxonomy | None = None,
) -> PhotoFile | None:
    """The file of a public photo, or None (404) for anything else."""
    codes = [c.code for c in public_categories(taxonomy)]
    row = session.execute(
        select(TicketPhoto.storage_key, TicketPhoto.content_type)
        .join(Ticket, Ticket.id == TicketPhoto.ticket_id)
        .where(
            TicketPhoto.id == photo_id,
            TicketPhoto.source.in_(PUBLIC_SOURCES),
            Ticket.category_code.in_(codes),
        )
    ).first()
    if row is None or not row.storage_key.endswith("." + extension):
        return None
    path: Path = store.path(row.storage_key)
    if not path.is_file():
        return None
    return PhotoFile(path, row.content_type)
