"""Keeping `review_messages` (our copy of residents' messages) up to date.

Three incremental passes, each remembering how far it got in a `counters` row:

1. new user events of Rasa's log -> review_messages (resident texts only,
   in batches; a message whose group was reviewed already is covered by
   that decision);
2. new tickets -> the messages they came from (a ticket may be opened after
   its message was copied, e.g. when the resident still had to give an
   address);
3. new ticket events -> messages whose ticket a worker transferred to
   another grid or gave another category (`worker_change`,
   `suggested_intent`: the intent of the ticket's category now).

A message leads to a ticket of the same resident whose original_text is the
message's text (opened within a day), or failing that, for a message of a
category intent, to the resident's next ticket opened within 10 minutes.

Safe to run from several threads or processes at once: each pass locks its
counter row (BEGIN IMMEDIATE on SQLite, SELECT ... FOR UPDATE on
PostgreSQL) and the log's event id is unique in review_messages.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.conversation_log import ConversationLog, LoggedMessage, parse_user_event
from bot.review.groups import refresh_groups
from bot.review.text import text_hash
from bot.store.db import session_scope
from bot.store.models import (
    Counter,
    Resident,
    ReviewDecision,
    ReviewMessage,
    Ticket,
    TicketEvent,
)
from bot.taxonomy import Taxonomy, get_taxonomy

__all__ = ["IngestResult", "LogCopier", "TicketFacts", "ingest", "ticket_facts"]

WATERMARK_EVENTS = "review:events"
WATERMARK_TICKETS = "review:tickets"
WATERMARK_TICKET_EVENTS = "review:ticket_events"

BATCH_SIZE = 1000
# The action server opens the ticket after Rasa logged the message, on
# another clock; a little slack either way.
LINK_SLACK = timedelta(seconds=5)
LINK_SAME_TEXT = timedelta(hours=24)
LINK_NEARBY = timedelta(minutes=10)
# On a database server ids are handed out before commit, so a row with a
# lower id can become visible after one with a higher id: re-read this many
# ids below the watermark (SQLite commits strictly in id order). Tickets are
# re-read whenever new ones arrive (and a message copied later finds its
# ticket by itself).
EVENT_OVERLAP = 200
TICKET_OVERLAP = 50
CHUNK = 500  # values per IN (...) list

T = TypeVar("T")


@dataclass
class IngestResult:
    added: int = 0  # messages copied from the log
    skipped: int = 0  # user events that are no resident text
    covered: int = 0  # added messages whose group was reviewed already
    linked: int = 0  # messages given their ticket
    updated: int = 0  # messages updated from workers' ticket changes
    batches: int = 0
    caught_up: bool = True  # False: stopped by the batch or time budget
    last_event_id: int = 0


@dataclass(frozen=True)
class TicketFacts:
    """What the inbox needs to know about a message's ticket."""

    id: int
    grid_id: int | None
    category_code: str
    worker_change: str | None  # category | grid | both | None
    suggested_intent: str | None  # the intent of the category, when a worker changed something


def _chunks(values: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- watermarks ----------------------------------------------------------------


def _locked_counter(session: Session, name: str) -> Counter:
    """The counter row `name`, locked until the end of the transaction."""
    query = select(Counter).where(Counter.name == name).with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=0))
                session.flush()
        except IntegrityError:
            pass  # created by another process meanwhile
        row = session.execute(query).scalar_one()
    return row


def watermark(session: Session, name: str = WATERMARK_EVENTS) -> int:
    value = session.execute(select(Counter.value).where(Counter.name == name)).scalar_one_or_none()
    return int(value or 0)


# -- tickets -------------------------------------------------------------------


def ticket_facts(
    session: Session, ticket_ids: Iterable[int], taxonomy: Taxonomy | None = None
) -> dict[int, TicketFacts]:
    """Grid, category and workers' changes of these tickets (two queries per 500)."""
    taxonomy = taxonomy or get_taxonomy()
    facts: dict[int, TicketFacts] = {}
    for chunk in _chunks(sorted(set(ticket_ids))):
        changes: dict[int, set[str]] = defaultdict(set)
        for ticket_id, type_, data in session.execute(
            select(TicketEvent.ticket_id, TicketEvent.type, TicketEvent.data).where(
                TicketEvent.ticket_id.in_(chunk), TicketEvent.type.in_(("transferred", "note"))
            )
        ):
            if type_ == "transferred":
                changes[ticket_id].add("grid")
            elif isinstance(data, dict) and data.get("category_to"):
                changes[ticket_id].add("category")
        for ticket_id, grid_id, code in session.execute(
            select(Ticket.id, Ticket.grid_id, Ticket.category_code).where(Ticket.id.in_(chunk))
        ):
            kinds = changes.get(ticket_id, set())
            change = "both" if len(kinds) == 2 else next(iter(kinds), None)
            category = taxonomy.by_code(code)
            facts[ticket_id] = TicketFacts(
                id=ticket_id,
                grid_id=grid_id,
                category_code=code,
                worker_change=change,
                suggested_intent=category.intent if change and category else None,
            )
    return facts


@dataclass(frozen=True)
class _Candidate:
    id: int
    original_text: str
    created_at: datetime


def _find_tickets(
    session: Session, messages: Sequence[dict[str, Any]], taxonomy: Taxonomy
) -> dict[int, int]:
    """{index in `messages`: ticket id} for the messages that led to a ticket."""
    if not messages:
        return {}
    senders = {m["sender_id"] for m in messages}
    low = min(m["timestamp"] for m in messages) - LINK_SLACK
    high = max(m["timestamp"] for m in messages) + LINK_SAME_TEXT
    by_sender: dict[str, list[_Candidate]] = defaultdict(list)
    for chunk in _chunks(senders):
        for ticket_id, sender, original, created in session.execute(
            select(Ticket.id, Ticket.sender_id, Ticket.original_text, Ticket.created_at)
            .where(Ticket.sender_id.in_(chunk), Ticket.created_at >= low, Ticket.created_at <= high)
            .order_by(Ticket.created_at, Ticket.id)
        ):
            by_sender[sender].append(_Candidate(ticket_id, (original or "").strip(), created))
    found: dict[int, int] = {}
    for index, m in enumerate(messages):
        candidates = by_sender.get(m["sender_id"])
        if not candidates:
            continue
        ts = m["timestamp"]
        after = [c for c in candidates if ts - LINK_SLACK <= c.created_at <= ts + LINK_SAME_TEXT]
        same = next((c for c in after if c.original_text == m["text"]), None)
        if same is None and taxonomy.by_intent(m["top_intent"] or "") is not None:
            same = next((c for c in after if c.created_at <= ts + LINK_NEARBY), None)
        if same is not None:
            found[index] = same.id
    return found


def _resident_grids(session: Session, senders: Iterable[str]) -> dict[str, int]:
    grids: dict[str, int] = {}
    for chunk in _chunks(set(senders)):
        grids.update(
            session.execute(
                select(Resident.sender_id, Resident.grid_id).where(
                    Resident.sender_id.in_(chunk), Resident.grid_id.isnot(None)
                )
            ).all()
        )
    return grids


def _apply_facts(row: dict[str, Any], facts: TicketFacts) -> None:
    row["ticket_id"] = facts.id
    if facts.grid_id is not None:
        row["grid_id"] = facts.grid_id
    row["worker_change"] = facts.worker_change
    row["suggested_intent"] = facts.suggested_intent


# -- pass 1: the log -------------------------------------------------------------


def _row(message: LoggedMessage) -> dict[str, Any]:
    return {
        "event_id": message.event_id,
        "sender_id": message.sender_id[:255],
        "text": message.text,
        "norm_hash": text_hash(message.text),
        "intent": (message.intent or None) and message.intent[:64],
        "top_intent": (message.top_intent or None) and message.top_intent[:64],
        "second_intent": (message.second_intent or None) and message.second_intent[:64],
        "confidence": message.confidence,
        "margin": message.margin,
        "timestamp": message.timestamp,
        "grid_id": None,
        "ticket_id": None,
        "worker_change": None,
        "suggested_intent": None,
        "decision_id": None,
    }


def _ingest_batch(
    engine: Engine,
    log: ConversationLog,
    batch_size: int,
    result: IngestResult,
    taxonomy: Taxonomy,
    recheck: bool,
) -> bool:
    """Copy one batch; True when there may be more to read."""
    with session_scope(engine, readonly=True) as session:
        start = watermark(session)
    events = log.user_events(start, batch_size)
    if recheck and start > 0:
        events = log.user_events(max(0, start - EVENT_OVERLAP), EVENT_OVERLAP, start) + events
    if not events:  # nothing new: no write transaction at all
        result.last_event_id = start
        return False
    # Parsing and normalising happen outside the write transaction (SQLite:
    # the write lock is held only for the inserts).
    parsed = [(event[0], parse_user_event(*event)) for event in events]
    rows = [_row(m) for _id, m in parsed if m is not None]
    new_watermark = max([start] + [event[0] for event in events])

    with session_scope(engine) as session:
        counter = _locked_counter(session, WATERMARK_EVENTS)
        if int(counter.value) != start:
            return True  # another ingest got here first: read again from its watermark
        if recheck:
            ids = [row["event_id"] for row in rows if row["event_id"] <= start]
            present: set[int] = set()
            for chunk in _chunks(ids):
                present.update(
                    session.execute(
                        select(ReviewMessage.event_id).where(ReviewMessage.event_id.in_(chunk))
                    ).scalars()
                )
            rows = [row for row in rows if row["event_id"] not in present]
        result.skipped += sum(1 for event_id, m in parsed if m is None and event_id > start)
        if rows:
            grids = _resident_grids(session, (r["sender_id"] for r in rows))
            for row in rows:
                row["grid_id"] = grids.get(row["sender_id"])
            links = _find_tickets(session, rows, taxonomy)
            facts = ticket_facts(session, links.values(), taxonomy)
            for index, ticket_id in links.items():
                _apply_facts(rows[index], facts[ticket_id])
            result.linked += len(links)
            decisions: dict[str, int] = {}
            for chunk in _chunks({r["norm_hash"] for r in rows}):
                decisions.update(
                    session.execute(
                        select(ReviewDecision.norm_hash, ReviewDecision.id).where(
                            ReviewDecision.norm_hash.in_(chunk)
                        )
                    ).all()
                )
            for row in rows:
                row["decision_id"] = decisions.get(row["norm_hash"])
            result.covered += sum(1 for r in rows if r["decision_id"] is not None)
            session.execute(insert(ReviewMessage.__table__), rows)
            refresh_groups(session, {r["norm_hash"] for r in rows if r["decision_id"] is None})
            result.added += len(rows)
        counter.value = new_watermark
        result.last_event_id = new_watermark
    return len(events) >= batch_size


# -- pass 2: new tickets -----------------------------------------------------------


def _newer_than_watermark(engine: Engine, name: str, column: Any) -> bool:
    """Whether rows with ids above the watermark exist (read-only: most calls
    find nothing new and then take no write lock)."""
    with session_scope(engine, readonly=True) as session:
        newest = session.execute(select(func.max(column))).scalar_one_or_none() or 0
        return newest > watermark(session, name)


def _link_new_tickets(engine: Engine, result: IngestResult, taxonomy: Taxonomy) -> None:
    if not _newer_than_watermark(engine, WATERMARK_TICKETS, Ticket.id):
        return
    while True:
        with session_scope(engine) as session:
            counter = _locked_counter(session, WATERMARK_TICKETS)
            start = int(counter.value)
            tickets = session.execute(
                select(Ticket.id, Ticket.sender_id, Ticket.created_at)
                .where(Ticket.id > max(0, start - TICKET_OVERLAP))
                .order_by(Ticket.id)
                .limit(CHUNK)
            ).all()
            if not tickets:
                return
            low = min(t.created_at for t in tickets) - LINK_SAME_TEXT
            high = max(t.created_at for t in tickets) + LINK_SLACK
            messages: list[dict[str, Any]] = []
            for chunk in _chunks({t.sender_id for t in tickets}):
                messages.extend(
                    dict(row._mapping)
                    for row in session.execute(
                        select(
                            ReviewMessage.id,
                            ReviewMessage.sender_id,
                            ReviewMessage.text,
                            ReviewMessage.timestamp,
                            ReviewMessage.top_intent,
                            ReviewMessage.norm_hash,
                        ).where(
                            ReviewMessage.sender_id.in_(chunk),
                            ReviewMessage.ticket_id.is_(None),
                            ReviewMessage.timestamp >= low,
                            ReviewMessage.timestamp <= high,
                        )
                    )
                )
            links = _find_tickets(session, messages, taxonomy)
            facts = ticket_facts(session, links.values(), taxonomy)
            for index, ticket_id in links.items():
                f = facts[ticket_id]
                values: dict[str, Any] = {
                    "ticket_id": f.id,
                    "worker_change": f.worker_change,
                    "suggested_intent": f.suggested_intent,
                }
                if f.grid_id is not None:
                    values["grid_id"] = f.grid_id
                session.execute(
                    update(ReviewMessage)
                    .where(ReviewMessage.id == messages[index]["id"])
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            # a worker's change shows in the group's figures
            refresh_groups(session, {messages[i]["norm_hash"] for i in links})
            result.linked += len(links)
            last = tickets[-1].id
            counter.value = max(start, last)
            if len(tickets) < CHUNK or last <= start:
                return


# -- pass 3: workers' changes --------------------------------------------------------


def _sync_ticket_changes(engine: Engine, result: IngestResult, taxonomy: Taxonomy) -> None:
    if not _newer_than_watermark(engine, WATERMARK_TICKET_EVENTS, TicketEvent.id):
        return
    with session_scope(engine) as session:
        counter = _locked_counter(session, WATERMARK_TICKET_EVENTS)
        start = int(counter.value)
        newest = session.execute(select(func.max(TicketEvent.id))).scalar_one_or_none() or 0
        if newest <= start:
            return
        affected: set[int] = set()
        for ticket_id, type_, data in session.execute(
            select(TicketEvent.ticket_id, TicketEvent.type, TicketEvent.data).where(
                TicketEvent.id > start,
                TicketEvent.id <= newest,
                TicketEvent.type.in_(("transferred", "note")),
            )
        ):
            if type_ == "transferred" or (isinstance(data, dict) and data.get("category_to")):
                affected.add(ticket_id)
        if affected:
            # only tickets some message leads to
            linked: set[int] = set()
            for chunk in _chunks(affected):
                linked.update(
                    session.execute(
                        select(ReviewMessage.ticket_id)
                        .where(ReviewMessage.ticket_id.in_(chunk))
                        .distinct()
                    ).scalars()
                )
            hashes: set[str] = set()
            for chunk in _chunks(linked):
                hashes.update(
                    session.execute(
                        select(ReviewMessage.norm_hash)
                        .where(ReviewMessage.ticket_id.in_(chunk))
                        .distinct()
                    ).scalars()
                )
            for f in ticket_facts(session, linked, taxonomy).values():
                values: dict[str, Any] = {
                    "worker_change": f.worker_change,
                    "suggested_intent": f.suggested_intent,
                }
                if f.grid_id is not None:
                    values["grid_id"] = f.grid_id
                result.updated += session.execute(
                    update(ReviewMessage)
                    .where(ReviewMessage.ticket_id == f.id)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                ).rowcount
            refresh_groups(session, hashes)
        counter.value = newest


# -- all passes ------------------------------------------------------------------------


def ingest(
    engine: Engine,
    log: ConversationLog | None,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
    time_budget: float | None = None,
    taxonomy: Taxonomy | None = None,
) -> IngestResult:
    """Bring review_messages up to date with the conversation log (None: no log
    at all) and with the tickets.

    `max_batches` / `time_budget` (seconds) bound the work of one call (the
    inbox page calls with a budget; a background task catches up the rest);
    `caught_up` says whether everything was read.
    """
    taxonomy = taxonomy or get_taxonomy()
    result = IngestResult()
    started = time.monotonic()
    if log is not None:
        recheck = not log.reads_in_commit_order
        while True:
            if max_batches is not None and result.batches >= max_batches:
                result.caught_up = False
                break
            if (
                time_budget is not None
                and result.batches
                and time.monotonic() - started > time_budget
            ):
                result.caught_up = False
                break
            more = _ingest_batch(engine, log, batch_size, result, taxonomy, recheck)
            recheck = False
            result.batches += 1
            if not more:
                break
    _link_new_tickets(engine, result, taxonomy)
    _sync_ticket_changes(engine, result, taxonomy)
    return result


class LogCopier:
    """Copies from one conversation log, one copy at a time: a caller that finds a
    copy running skips its own (the web app's pages and its background task)."""

    def __init__(self, log: ConversationLog) -> None:
        self.log = log
        self._lock = threading.Lock()
        self.last: IngestResult | None = None

    def copy(
        self, engine: Engine, time_budget: float | None = None, max_batches: int | None = None
    ) -> IngestResult | None:
        """Copy what is new; None when there is no log yet or a copy is running."""
        if self.log.engine() is None or not self._lock.acquire(blocking=False):
            return None
        try:
            self.last = ingest(engine, self.log, time_budget=time_budget, max_batches=max_batches)
            return self.last
        finally:
            self._lock.release()
