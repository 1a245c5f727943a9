"""Photos of tickets: checking, storing, attaching, listing and serving them.

A resident's WeChat image message is downloaded through WeChat's media API
(`fetch_wechat_photo`, by the action server when the message arrives: WeChat
keeps temporary media 3 days), checked (size, and that the bytes are a JPEG,
PNG, GIF or WebP picture, whatever the sender claims) and kept in the photo
store, a local folder (PHOTO_DIR) named by content hash. The store's key
travels in the report's `photos` slot until the ticket opens, then
`attach_stored` links it to the ticket (a `ticket_photos` row). A worker's
photo (e.g. the repair done) is uploaded on the ticket page (`add_worker_photo`).
The worker's ticket page lists them (`photos_of`) and `photo_file` serves one
file to whoever may see the ticket.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.settings import get_settings
from bot.store.models import Ticket, TicketPhoto, aware
from bot.tickets.access import Viewer, can_see

# What a picture's first bytes look like, per type we accept.
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
KEY_RE = re.compile(r"^[0-9a-f]{64}\.(jpg|png|gif|webp)$")
MAX_PHOTOS_PER_TICKET = 20  # more is a mistake (or abuse), not evidence
MAX_PHOTOS_PER_REPORT = 9  # what WeChat lets one pick at once


class PhotoRejected(ValueError):
    """Not acceptable as a photo: `reason` is `too_large`, `not_image` or `empty`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def image_type(data: bytes) -> str | None:
    """The picture's type from its magic bytes, None when it is no picture we take."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_photo(data: bytes, max_bytes: int | None = None) -> str:
    """The content type of an acceptable photo; PhotoRejected otherwise."""
    limit = max_bytes if max_bytes is not None else get_settings().photo_max_bytes
    if not data:
        raise PhotoRejected("empty", "empty file")
    if len(data) > limit:
        raise PhotoRejected("too_large", f"{len(data)} bytes, at most {limit}")
    content_type = image_type(data)
    if content_type is None:
        raise PhotoRejected("not_image", "not a JPEG, PNG, GIF or WebP picture")
    return content_type


def max_size_label(max_bytes: int | None = None) -> str:
    """The largest photo accepted, as residents and workers read it: 10MB, 500KB."""
    limit = max_bytes if max_bytes is not None else get_settings().photo_max_bytes
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g}MB"
    return f"{max(1, round(limit / 1000))}KB"


# -- the store ------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPhoto:
    key: str  # file name in the store: <sha256>.<ext>
    content_type: str
    size_bytes: int
    sha256: str
    media_id: str | None = None

    def to_slot(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
            "media_id": self.media_id,
        }

    @classmethod
    def from_slot(cls, value: Any) -> StoredPhoto | None:
        """A slot entry back, None for anything else (e.g. an old PicUrl string)."""
        if not isinstance(value, dict) or not KEY_RE.match(str(value.get("key", ""))):
            return None
        key = str(value["key"])
        return cls(
            key=key,
            content_type=str(value.get("content_type") or ""),
            size_bytes=int(value.get("size_bytes") or 0),
            sha256=key.split(".", 1)[0],
            media_id=value.get("media_id"),
        )


class PhotoStore:
    """A local folder of photo files, named by content hash (written once)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not KEY_RE.match(key):  # never a path a caller could steer
            raise ValueError(f"not a photo key: {key!r}")
        return self.root / key[:2] / key

    def save(self, data: bytes, max_bytes: int | None = None, media_id: str | None = None):
        """Check and keep `data`; the StoredPhoto (PhotoRejected when unacceptable)."""
        content_type = check_photo(data, max_bytes)
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest}.{_EXTENSIONS[content_type]}"
        target = self.path(key)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # written aside and renamed: a reader never sees half a file
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredPhoto(key, content_type, len(data), digest, media_id)

    def exists(self, key: str) -> bool:
        return KEY_RE.match(key) is not None and self.path(key).is_file()


def photo_store() -> PhotoStore:
    """The store of this installation (PHOTO_DIR)."""
    return PhotoStore(get_settings().photo_dir)


# -- WeChat -----------------------------------------------------------------------

_wechat_client: Any = None


def _wechat_api() -> Any:
    """One WeChat API client per process (it caches the access token)."""
    global _wechat_client
    if _wechat_client is None:
        from bot.channels.wechat_api import WeChatApiClient

        _wechat_client = WeChatApiClient.for_deployment(get_settings())
    return _wechat_client


async def reset_wechat_client() -> None:
    """Forget the client (tests: another fake, another loop)."""
    global _wechat_client
    if _wechat_client is not None:
        await _wechat_client.close()
    _wechat_client = None


async def fetch_wechat_photo(media_id: str, store: PhotoStore | None = None) -> StoredPhoto:
    """Download a resident's image message (its MediaId), check it and store it.

    Raises PhotoRejected (too large, not a picture) or
    bot.channels.wechat_api.MediaError (WeChat could not give it).
    """
    from bot.channels.wechat_api import MediaError

    limit = get_settings().photo_max_bytes
    try:
        media = await _wechat_api().download_media(media_id, limit)
    except MediaError as error:
        if error.reason == "too_large":
            raise PhotoRejected("too_large", str(error)) from error
        raise
    return (store or photo_store()).save(media.data, limit, media_id=media_id)


# -- tickets ------------------------------------------------------------------------


def attach_stored(
    session: Session,
    ticket: Ticket,
    photos: Iterable[StoredPhoto],
    *,
    source: str,
    actor: str,
    now: datetime | None = None,
) -> list[TicketPhoto]:
    """Link stored photos to the ticket (once per picture), in the caller's transaction."""
    now = aware(now)
    have = set(
        session.execute(
            select(TicketPhoto.sha256).where(TicketPhoto.ticket_id == ticket.id)
        ).scalars()
    )
    added: list[TicketPhoto] = []
    for photo in photos:
        if photo.sha256 in have or len(have) >= MAX_PHOTOS_PER_TICKET:
            continue
        have.add(photo.sha256)
        row = TicketPhoto(
            ticket_id=ticket.id,
            storage_key=photo.key,
            content_type=photo.content_type,
            size_bytes=photo.size_bytes,
            sha256=photo.sha256,
            source=source,
            actor=actor,
            media_id=photo.media_id,
            created_at=now,
        )
        session.add(row)
        added.append(row)
    session.flush()
    return added


def add_worker_photo(
    session: Session,
    worker: Viewer,
    actor: str,
    number: str,
    data: bytes,
    store: PhotoStore | None = None,
    max_bytes: int | None = None,
    now: datetime | None = None,
) -> TicketPhoto | None:
    """A worker's photo for a ticket they may see; None when it is not theirs to see.

    Raises PhotoRejected for a file that is too large or no picture (nothing kept).
    """
    ticket = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one_or_none()
    if ticket is None or not can_see(worker, ticket):
        return None
    stored = (store or photo_store()).save(data, max_bytes)
    added = attach_stored(session, ticket, [stored], source="worker", actor=actor, now=now)
    if added:
        return added[0]
    return session.execute(
        select(TicketPhoto).where(
            TicketPhoto.ticket_id == ticket.id, TicketPhoto.sha256 == stored.sha256
        )
    ).scalar_one()


@dataclass(frozen=True)
class PhotoView:
    """One photo as pages show it."""

    id: int
    url: str  # the ticket page's own address for the file
    source: str  # resident / worker
    content_type: str
    size_bytes: int
    created_at: datetime


def photo_path(number: str, photo_id: int) -> str:
    return f"/tickets/{number}/photos/{photo_id}"


def photos_of(session: Session, ticket: Ticket) -> list[PhotoView]:
    """The ticket's photos, oldest first."""
    rows = session.execute(
        select(TicketPhoto)
        .where(TicketPhoto.ticket_id == ticket.id)
        .order_by(TicketPhoto.created_at, TicketPhoto.id)
    ).scalars()
    return [
        PhotoView(
            id=row.id,
            url=photo_path(ticket.number, row.id),
            source=row.source,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            created_at=row.created_at,
        )
        for row in rows
    ]


@dataclass(frozen=True)
class PhotoFile:
    path: Path
    content_type: str


def photo_file(
    session: Session,
    worker: Viewer,
    number: str,
    photo_id: int,
    store: PhotoStore | None = None,
) -> PhotoFile | None:
    """The file of a ticket's photo for a worker who may see the ticket, else None."""
    row = session.execute(
        select(TicketPhoto, Ticket)
        .join(Ticket, Ticket.id == TicketPhoto.ticket_id)
        .where(TicketPhoto.id == photo_id, Ticket.number == number)
    ).first()
    if row is None or not can_see(worker, row.Ticket):
        return None
    path = (store or photo_store()).path(row.TicketPhoto.storage_key)
    if not path.is_file():
        return None
    return PhotoFile(path, row.TicketPhoto.content_type)


def resident_photo_file(
    session: Session, openid: str, number: str, photo_id: int, store: PhotoStore | None = None
) -> PhotoFile | None:
    """The file of a photo of the resident's own ticket ("my reports"), else None."""
    row = session.execute(
        select(TicketPhoto, Ticket)
        .join(Ticket, Ticket.id == TicketPhoto.ticket_id)
        .where(TicketPhoto.id == photo_id, Ticket.number == number)
    ).first()
    if row is None or row.Ticket.sender_id != openid:
        return None
    path = (store or photo_store()).path(row.TicketPhoto.storage_key)
    if not path.is_file():
        return None
    return PhotoFile(path, row.TicketPhoto.content_type)
