"""`review_groups`: per group, the figures of its unreviewed messages.

The unfiltered inbox sorts groups by their lowest confidence, smallest
margin, newest message or size. Aggregating 100,000 messages for every page
costs ~0.2 s of CPU on SQLite; this table keeps those figures per group
(indexed per sort order), so a page is an index walk. It is derived data:
`refresh_groups` recomputes the groups whose messages changed, in the same
transaction as the change (ingest, ticket links, decisions, undo), and
`rebuild_groups` recomputes all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from bot.store.models import ReviewGroup, ReviewMessage

__all__ = ["group_figures", "rebuild_groups", "refresh_groups"]

CHUNK = 500


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def group_figures():  # -> Select, the aggregate of unreviewed messages per group
    m = ReviewMessage
    return (
        select(
            m.norm_hash,
            func.count().label("messages"),
            func.min(m.confidence).label("min_confidence"),
            func.max(m.confidence).label("max_confidence"),
            func.min(m.margin).label("min_margin"),
            func.max(m.timestamp).label("newest"),
            func.max(m.id).label("rep_id"),
            func.max(m.suggested_intent).label("suggested_intent"),
            func.count(m.worker_change).label("changed"),
        )
        .where(m.decision_id.is_(None))
        .group_by(m.norm_hash)
    )


def refresh_groups(session: Session, hashes: Iterable[str]) -> None:
    """Recompute the rows of these groups (in the caller's transaction)."""
    for chunk in _chunks(sorted(set(hashes))):
        session.execute(
            delete(ReviewGroup)
            .where(ReviewGroup.norm_hash.in_(chunk))
            .execution_options(synchronize_session=False)
        )
        rows = [
            dict(row._mapping)
            for row in session.execute(group_figures().where(ReviewMessage.norm_hash.in_(chunk)))
        ]
        if rows:
            session.execute(insert(ReviewGroup.__table__), rows)


def rebuild_groups(session: Session) -> int:
    """Recompute every row (e.g. after restoring a backup); returns the groups."""
    session.execute(delete(ReviewGroup).execution_options(synchronize_session=False))
    rows = [dict(row._mapping) for row in session.execute(group_figures())]
    if rows:
        session.execute(insert(ReviewGroup.__table__), rows)
    return len(rows)
