"""Kept only as long as needed: the periodic purge (`python -m bot privacy purge`).

Older than the retention period (RETENTION_DAYS, default 180):
- the conversation log's rows (Rasa's `events`) and the review inbox's copies,
- WeChat notices to residents that are no longer pending (deferred, sent, failed),
- photos of finished tickets (closed, cancelled),
- finished tickets themselves are anonymised (bot.privacy.records: the record
  stays, the link to the OpenID and the resident's contact go),
- remembered addresses of residents with no linked ticket left.

One transaction per batch (BATCH rows): an interrupted purge leaves every row
either done or untouched, and the next run simply finds what is left (the
conditions select only rows not yet done). `dry_run` counts what would go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.privacy import records
from bot.store.db import session_scope
from bot.store.models import Notification, Resident, ReviewMessage, Ticket, TicketPhoto, aware

BATCH = 500
FINISHED = ("closed", "cancelled")
KINDS = {
    "conversation_log": "对话记录",
    "review_copies": "审核箱中的对话副本",
    "notices": "发给居民的通知（已送达、待发或失败）",
    "photos": "已结束工单的照片",
    "photo_files": "已结束工单的照片（照片表中的行，文件随之删除）",
    "tickets": "匿名化的已结束工单",
    "residents": "居民记住的地址",
}


@dataclass
class PurgeResult:
    cutoff: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    batches: int = 0

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        return [f"{KINDS[k]} ({k}): {verb} {n}" for k, n in self.counts.items()]


def _notices(cutoff: datetime):
    return and_(
        Notification.channel == "wechat",
        Notification.status != "pending",
        Notification.created_at < cutoff,
    )


def _photos(cutoff: datetime):
    return and_(
        Ticket.status.in_(FINISHED),
        Ticket.updated_at < cutoff,
        func.coalesce(func.json_array_length(Ticket.photos), 0) > 0,
    )


def _photo_rows(cutoff: datetime):
    finished = select(Ticket.id).where(Ticket.status.in_(FINISHED), Ticket.updated_at < cutoff)
    return TicketPhoto.ticket_id.in_(finished)


def _tickets(cutoff: datetime):
    return and_(
        Ticket.status.in_(FINISHED),
        Ticket.updated_at < cutoff,
        Ticket.sender_id.notlike(records.ANONYMISED_PREFIX + "%"),
    )


def _residents(cutoff: datetime):
    linked = select(Ticket.id).where(Ticket.sender_id == Resident.sender_id).exists()
    return and_(Resident.updated_at < cutoff, ~linked)


def _count(engine: Engine, column, condition) -> int:
    with session_scope(engine, readonly=True) as session:
        return int(session.execute(select(func.count(column)).where(condition)).scalar() or 0)


def _batches(
    engine: Engine,
    id_column,
    condition,
    work: Callable[[Session, list[int]], int],
    batch: int,
    result: PurgeResult,
) -> int:
    """Run `work` on batches of matching ids, one transaction each, until none are left."""
    done = 0
    while True:
        with session_scope(engine) as session:
            ids = list(
                session.execute(
                    select(id_column).where(condition).order_by(id_column).limit(batch)
                ).scalars()
            )
            if not ids:
                return done
            done += work(session, ids)
        result.batches += 1


def _clear_photos(session: Session, ids: list[int]) -> int:
    # updated_at keeps its value: removing photos is not news about the matter
    session.execute(
        update(Ticket)
        .where(Ticket.id.in_(ids))
        .values(photos=[], updated_at=Ticket.updated_at, version=Ticket.version + 1)
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def _anonymise(session: Session, ids: list[int]) -> int:
    for ticket in session.execute(select(Ticket).where(Ticket.id.in_(ids))).scalars().all():
        records.anonymise_ticket(session, ticket)
    return len(ids)


def _purge_photo_rows(engine: Engine, cutoff: datetime, batch: int, result, store) -> int:
    """Photo rows of old finished tickets, a batch per transaction; each batch's
    files that no row names any more are deleted once it is committed."""
    if store is None:
        from bot.tickets.photos import photo_store

        store = photo_store()
    done = 0
    while True:
        with session_scope(engine) as session:
            ids = list(
                session.execute(
                    select(TicketPhoto.id)
                    .where(_photo_rows(cutoff))
                    .order_by(TicketPhoto.id)
                    .limit(batch)
                ).scalars()
            )
            if not ids:
                return done
            keys = records.delete_photo_rows(session, ids)
            done += len(ids)
        result.batches += 1
        with session_scope(engine, readonly=True) as session:
            records.delete_unreferenced_files(session, store, keys)


def purge(
    engine: Engine,
    log_url: str | None,
    *,
    days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
    photo_store=None,
) -> PurgeResult:
    """Remove or anonymise what is older than `days` (see the module docstring)."""
    if days < 1:
        raise ValueError("the retention period must be at least one day")
    cutoff = aware(now) - timedelta(days=days)
    result = PurgeResult(cutoff=cutoff, dry_run=dry_run)
    counts = result.counts
    log = records.log_engine(log_url) if log_url else None
    try:
        if dry_run:
            counts["conversation_log"] = records.count_log_events(log, before=cutoff) if log else 0
            counts["review_copies"] = _count(
                engine, ReviewMessage.id, ReviewMessage.timestamp < cutoff
            )
            counts["notices"] = _count(engine, Notification.id, _notices(cutoff))
            counts["photos"] = _count(engine, Ticket.id, _photos(cutoff))
            counts["photo_files"] = _count(engine, TicketPhoto.id, _photo_rows(cutoff))
            counts["tickets"] = _count(engine, Ticket.id, _tickets(cutoff))
            counts["residents"] = _count(engine, Resident.id, _residents(cutoff))
            return result
        if log is not None:
            while ids := records.log_event_ids(log, before=cutoff, limit=batch):
                counts["conversation_log"] += records.delete_log_events(log, ids)
                result.batches += 1
        counts["review_copies"] = _batches(
            engine,
            ReviewMessage.id,
            ReviewMessage.timestamp < cutoff,
            records.delete_review_messages,
            batch,
            result,
        )
        counts["notices"] = _batches(
            engine, Notification.id, _notices(cutoff), records.delete_notices, batch, result
        )
        counts["photos"] = _batches(
            engine, Ticket.id, _photos(cutoff), _clear_photos, batch, result
        )
        counts["photo_files"] = _purge_photo_rows(engine, cutoff, batch, result, photo_store)
        counts["tickets"] = _batches(engine, Ticket.id, _tickets(cutoff), _anonymise, batch, result)
        counts["residents"] = _batches(
            engine, Resident.id, _residents(cutoff), records.delete_residents, batch, result
        )
        return result
    finally:
        if log is not None:
            log.dispose()
