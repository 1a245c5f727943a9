"""What forgetting a resident does to each kind of record, shared by the
periodic purge (bot.privacy.retention) and a resident's own deletion request
(bot.privacy.rights).

- A ticket keeps its record (category, place down to the building, status,
  history, times) but loses the link to the resident: the OpenID becomes
  `anonymised:<id>`, the message id, room, coordinates and photos go, the
  resident's words keep only what masking leaves (no phone, ID, card, room),
  and in its history the resident's actor name and the contact a submitting
  system sent are replaced. This is the one sanctioned change to the
  append-only history, done with plain UPDATEs (the ORM guard forbids it
  everywhere else).
- The conversation log (Rasa's `events` table, possibly in its own database)
  and the review inbox's copy of it lose the rows.
- Deferred and old WeChat notices to the resident (their OpenID is the target)
  are deleted; a resident's remembered address (`residents`) too.

Every function works inside the caller's transaction, on at most `limit`
rows, and says how many it did, so callers commit batch by batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.future import create_engine
from sqlalchemy.orm import Session

from bot.privacy.masking import mask
from bot.review.groups import refresh_groups
from bot.settings import resolve_sqlite_url
from bot.store.models import (
    ConsultationVote,
    Notification,
    Resident,
    ReviewMessage,
    Ticket,
    TicketEvent,
    TicketPhoto,
)

ANONYMISED_PREFIX = "anonymised:"
ANONYMOUS_RESIDENT = "resident:anonymised"


def is_anonymised(sender_id: str | None) -> bool:
    return bool(sender_id) and sender_id.startswith(ANONYMISED_PREFIX)


def anonymise_ticket(session: Session, ticket: Ticket) -> None:
    """Cut the ticket's link to the resident (see the module docstring)."""
    if is_anonymised(ticket.sender_id):
        return
    sender = ticket.sender_id
    # A plain UPDATE: `updated_at` keeps its value (forgetting is not news about
    # the matter; the ORM would stamp now), `version` moves on so that a
    # concurrent ORM writer holding the old row fails instead of undoing this.
    session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id)
        .values(
            sender_id=f"{ANONYMISED_PREFIX}{ticket.id}",
            message_id=None,
            room=None,
            lat=None,
            lon=None,
            photos=[],
            description=mask(ticket.description),
            original_text=mask(ticket.original_text) if ticket.original_text else None,
            address_text=mask(ticket.address_text) if ticket.address_text else None,
            updated_at=Ticket.updated_at,
            version=Ticket.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    events = session.execute(
        select(TicketEvent.id, TicketEvent.actor, TicketEvent.note, TicketEvent.data).where(
            TicketEvent.ticket_id == ticket.id
        )
    ).all()
    for event_id, actor, note, data in events:
        values: dict = {}
        if actor in (sender, f"resident:{sender}"):
            values["actor"] = ANONYMOUS_RESIDENT
        if isinstance(data, dict) and "open311_contact" in data:
            values["note"] = "（提交方留下的联系方式已按保存期限删除）"
            values["data"] = {k: v for k, v in data.items() if k != "open311_contact"}
        elif note and mask(note) != note:
            values["note"] = mask(note)
        if values:
            session.execute(update(TicketEvent).where(TicketEvent.id == event_id).values(**values))
    # the photos stay with the record (until the retention purge), not who sent them
    session.execute(
        update(TicketPhoto)
        .where(
            TicketPhoto.ticket_id == ticket.id,
            TicketPhoto.actor.in_((sender, f"resident:{sender}")),
        )
        .values(actor=ANONYMOUS_RESIDENT, media_id=None)
        .execution_options(synchronize_session=False)
    )
    # the ORM's copies of the events are stale now
    session.expire_all()


def anonymise_votes(session: Session, sender_id: str) -> int:
    """Cut the resident's votes from their OpenID; how many.

    The vote itself stays: a consultation's count must not change because a
    voter later asked to be forgotten. Each vote gets its own placeholder, so
    the one-voice-per-resident constraint still holds."""
    votes = (
        session.execute(select(ConsultationVote.id).where(ConsultationVote.voter == sender_id))
        .scalars()
        .all()
    )
    for vote_id in votes:
        session.execute(
            update(ConsultationVote)
            .where(ConsultationVote.id == vote_id)
            .values(voter=f"{ANONYMISED_PREFIX}vote:{vote_id}")
            .execution_options(synchronize_session=False)
        )
    return len(votes)


def delete_notices(session: Session, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    return session.execute(delete(Notification).where(Notification.id.in_(ids))).rowcount or 0


def delete_review_messages(session: Session, ids: Sequence[int]) -> int:
    """Delete the review inbox's copies and recount their groups."""
    if not ids:
        return 0
    hashes = set(
        session.execute(select(ReviewMessage.norm_hash).where(ReviewMessage.id.in_(ids))).scalars()
    )
    done = session.execute(delete(ReviewMessage).where(ReviewMessage.id.in_(ids))).rowcount or 0
    refresh_groups(session, hashes)
    return done


def delete_photo_rows(session: Session, ids: Sequence[int]) -> set[str]:
    """Delete these photo rows; the storage keys they named (files are deleted
    by `delete_unreferenced_files` once this transaction is committed)."""
    if not ids:
        return set()
    keys = set(
        session.execute(select(TicketPhoto.storage_key).where(TicketPhoto.id.in_(ids))).scalars()
    )
    session.execute(
        delete(TicketPhoto)
        .where(TicketPhoto.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return keys


def delete_unreferenced_files(session: Session, store, keys: set[str]) -> int:
    """Delete the files of `keys` that no photo row names any more (a file is
    shared by every ticket the same picture was sent for)."""
    if not keys:
        return 0
    still = set(
        session.execute(
            select(TicketPhoto.storage_key).where(TicketPhoto.storage_key.in_(keys))
        ).scalars()
    )
    deleted = 0
    for key in keys - still:
        try:
            store.path(key).unlink(missing_ok=True)
            deleted += 1
        except (OSError, ValueError):
            pass  # found again by the next purge? no: logged as not deleted
    return deleted


def delete_residents(session: Session, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    return session.execute(delete(Resident).where(Resident.id.in_(ids))).rowcount or 0


# -- the conversation log (Rasa's table) -------------------------------------------------


def log_engine(url: str) -> Engine | None:
    """A writing engine on the conversation log, or None when there is none
    (a SQLite file that does not exist is never created from here)."""
    url = resolve_sqlite_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or not Path(parsed.database).is_file():
            return None
    engine = create_engine(url)
    with engine.connect() as conn:
        has_events = engine.dialect.has_table(conn, "events")
    if not has_events:
        engine.dispose()
        return None
    return engine


def log_event_ids(
    engine: Engine,
    *,
    before: datetime | None = None,
    sender_id: str | None = None,
    limit: int = 500,
) -> list[int]:
    """Ids of log rows older than `before` and/or of `sender_id`, oldest first."""
    where, params = [], {"limit": limit}
    if before is not None:
        where.append("timestamp < :before")
        params["before"] = before.timestamp()
    if sender_id is not None:
        where.append("sender_id = :sender")
        params["sender"] = sender_id
    sql = f"SELECT id FROM events WHERE {' AND '.join(where) or '1=1'} ORDER BY id LIMIT :limit"
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text(sql), params)]


def count_log_events(
    engine: Engine,
    *,
    before: datetime | None = None,
    sender_id: str | None = None,
    messages_only: bool = False,
) -> int:
    """How many log rows match (`messages_only`: the resident's messages)."""
    where, params = [], {}
    if messages_only:
        where.append("type_name = 'user'")
    if before is not None:
        where.append("timestamp < :before")
        params["before"] = before.timestamp()
    if sender_id is not None:
        where.append("sender_id = :sender")
        params["sender"] = sender_id
    sql = f"SELECT COUNT(*) FROM events WHERE {' AND '.join(where) or '1=1'}"
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


def delete_log_events(engine: Engine, ids: Sequence[int]) -> int:
    """Delete these log rows in one transaction of the log's database."""
    if not ids:
        return 0
    with engine.begin() as conn:
        placeholders = ", ".join(f":id{i}" for i in range(len(ids)))
        result = conn.execute(
            text(f"DELETE FROM events WHERE id IN ({placeholders})"),
            {f"id{i}": v for i, v in enumerate(ids)},
        )
        return result.rowcount or 0
