"""Staff access records: who opened what about residents, and when.

Every opening of a ticket page, a CSV export, the review inbox and every full
Open311 read writes one append-only row (the models' flush guard refuses to
change or delete one). Admins list and filter them on /admin/access.

Every function works inside the caller's transaction, so a page that is
shown is a page that was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import AccessRecord, aware

TICKET_PAGE = "ticket_page"
CSV_EXPORT = "csv_export"
CSV_EXPORT_FULL = "csv_export_full"  # unmasked, asked for by an admin
REVIEW_INBOX = "review_inbox"
OPEN311_FULL_READ = "open311_full_read"
ACTIONS = (TICKET_PAGE, CSV_EXPORT, CSV_EXPORT_FULL, REVIEW_INBOX, OPEN311_FULL_READ)
ACTION_LABELS = {
    TICKET_PAGE: "查看工单",
    CSV_EXPORT: "导出CSV（已遮蔽）",
    CSV_EXPORT_FULL: "导出CSV（完整）",
    REVIEW_INBOX: "查看审核箱",
    OPEN311_FULL_READ: "Open311完整读取",
}
MAX_TARGET = 200
MAX_DETAIL = 4000
PAGE_SIZE = 200


@dataclass(frozen=True)
class AccessFilter:
    actor: str = ""  # worker:5, apikey:3f9a0c1e, or a part of the name
    action: str = ""
    target: str = ""  # a ticket number or a part of it
    since: datetime | None = None
    until: datetime | None = None


def record(
    session: Session,
    actor: str,
    action: str,
    target: str | None = None,
    *,
    actor_name: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> AccessRecord:
    """Append one access record."""
    if action not in ACTIONS:
        raise ValueError(f"unknown access action {action!r}")
    row = AccessRecord(
        at=aware(now),
        actor=actor[:128],
        actor_name=actor_name[:100] if actor_name else None,
        action=action,
        target=target[:MAX_TARGET] if target else None,
        detail=detail[:MAX_DETAIL] if detail else None,
    )
    session.add(row)
    session.flush()
    return row


def list_records(
    session: Session, where: AccessFilter | None = None, limit: int = PAGE_SIZE
) -> list[AccessRecord]:
    """The newest records that match, at most `limit`."""
    where = where or AccessFilter()
    query = select(AccessRecord)
    if where.actor:
        pattern = f"%{_like(where.actor)}%"
        query = query.where(
            (AccessRecord.actor == where.actor) | AccessRecord.actor_name.like(pattern, escape="\\")
        )
    if where.action:
        query = query.where(AccessRecord.action == where.action)
    if where.target:
        query = query.where(AccessRecord.target.like(f"%{_like(where.target)}%", escape="\\"))
    if where.since is not None:
        query = query.where(AccessRecord.at >= aware(where.since))
    if where.until is not None:
        query = query.where(AccessRecord.at < aware(where.until))
    query = query.order_by(AccessRecord.at.desc(), AccessRecord.id.desc()).limit(limit)
    return list(session.execute(query).scalars())


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
