"""The one reader of Rasa's conversation log (its SQL tracker store), read-only.

Rasa writes one row per event into its `events` table (id, sender_id,
type_name, timestamp, intent_name, action_name, data JSON); a resident message
is a row with type_name 'user' whose `data` holds the text and Rasa's
`parse_data` (intent, intent_ranking, our normaliser's original_text ...).
This module only ever reads that table; SQLite files are opened read-only.

Two readers use it: the review inbox copies new messages in id order
(`ConversationLog.user_events`: a range scan of the primary key, rowid on
SQLite, so no index of our own is needed on a table Rasa owns) and the worker's
ticket page shows a resident's last messages (`recent_messages`: Rasa's own
sender_id index).

The log may not exist yet (no Rasa has run, another server): then there is
nothing to read, and nothing is created.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.future import create_engine

from bot.settings import resolve_sqlite_url

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"

# Rasa 3.6's `events` table as its SQLTrackerStore creates it: what this module
# reads (tests and benchmarks write logs of their own with it).
RASA_EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS events ("
    "id INTEGER NOT NULL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
    "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
    "action_name VARCHAR(255), data TEXT)",
    "CREATE INDEX IF NOT EXISTS ix_events_sender_id ON events (sender_id)",
)


@dataclass(frozen=True)
class LoggedMessage:
    """One resident message of the log, as the review inbox keeps it."""

    event_id: int
    sender_id: str
    text: str
    timestamp: datetime
    intent: str | None  # what the assistant acted on (may be nlu_fallback)
    top_intent: str | None  # the best intent other than the fallback
    second_intent: str | None
    confidence: float  # of top_intent
    margin: float  # top_intent's confidence minus second_intent's


def open_log(url: str) -> Engine | None:
    """An engine that reads the conversation log at `url`, or None when a
    SQLite log file does not exist yet (it is never created from here).

    SQLite files are opened read-only: this process must never write Rasa's log.
    """
    url = resolve_sqlite_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return None
        path = Path(database)
        if not path.is_file():
            return None
        return create_engine(
            f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true",
            connect_args={"check_same_thread": False, "timeout": 5},
        )
    return create_engine(url, pool_pre_ping=True, pool_size=2)


class ConversationLog:
    """The log at `url`, opened on first use once it exists (thread-safe)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def engine(self) -> Engine | None:
        """The read-only engine, or None while the log does not exist."""
        with self._lock:
            if self._engine is None:
                self._engine = open_log(self.url)
            return self._engine

    @property
    def reads_in_commit_order(self) -> bool:
        """SQLite hands out ids in commit order; a database server does not (a row
        with a lower id may become visible after one with a higher id)."""
        engine = self.engine()
        return engine is not None and engine.dialect.name == "sqlite"

    def user_events(
        self, after_id: int, limit: int, up_to_id: int | None = None
    ) -> list[tuple[int, str, float | None, str | None]]:
        """(id, sender_id, timestamp, data) of user events with id > after_id, in id
        order; [] while there is no log or no events table (yet)."""
        engine = self.engine()
        if engine is None:
            return []
        sql = (
            "SELECT id, sender_id, timestamp, data FROM events "
            "WHERE id > :after AND type_name = 'user'"
            + (" AND id <= :up_to" if up_to_id is not None else "")
            + " ORDER BY id LIMIT :limit"
        )
        params: dict[str, int] = {"after": after_id, "limit": limit}
        if up_to_id is not None:
            params["up_to"] = up_to_id
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql), params)]
        except SQLAlchemyError as error:
            if _missing_table(error):
                return []
            raise

    def recent_messages(
        self, sender_id: str, before: datetime, limit: int = 10
    ) -> list[LoggedMessage]:
        """The resident's last `limit` messages up to `before`, oldest first; [] when
        the log cannot be read (a page then goes without them)."""
        engine = self.engine()
        if engine is None:
            return []
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT id, sender_id, timestamp, data FROM events "
                        "WHERE sender_id = :sender AND type_name = 'user' AND timestamp <= :before "
                        "ORDER BY timestamp DESC, id DESC LIMIT :limit"
                    ),
                    # some rows are button payloads, skipped below
                    {"sender": sender_id, "before": before.timestamp(), "limit": limit + 20},
                ).all()
        except SQLAlchemyError as error:
            logger.warning("conversation log not readable: %s", error)
            return []
        messages = [parse_user_event(*row) for row in reversed(rows)]
        return [m for m in messages if m is not None][-limit:]

    def last_message_at(self, sender_id: str) -> datetime | None:
        """When the resident last wrote (any message, menu click or subscription);
        None when unknown (no log, never wrote, log not readable)."""
        engine = self.engine()
        if engine is None:
            return None
        try:
            with engine.connect() as connection:
                stamp = connection.execute(
                    text(
                        "SELECT MAX(timestamp) FROM events "
                        "WHERE sender_id = :sender AND type_name = 'user'"
                    ),
                    {"sender": sender_id},
                ).scalar()
        except SQLAlchemyError as error:
            logger.warning("conversation log not readable: %s", error)
            return None
        if stamp is None:
            return None
        return datetime.fromtimestamp(float(stamp), tz=timezone.utc)

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def _missing_table(error: SQLAlchemyError) -> bool:
    message = str(getattr(error, "orig", error)).lower()
    return "no such table" in message or "does not exist" in message


def parse_user_event(
    event_id: int, sender_id: str, timestamp: float | None, data: str | None
) -> LoggedMessage | None:
    """The resident message of a user event, or None for what is no resident
    text: intent triggers sent by channels and buttons ("/share_photo",
    "/greet" on subscribe), empty texts, unreadable rows."""
    try:
        event = json.loads(data or "{}")
    except ValueError:
        logger.warning("events row %s: data is not JSON", event_id)
        return None
    if not isinstance(event, dict):
        return None
    parse = event.get("parse_data") or {}
    if not isinstance(parse, dict):
        parse = {}
    message = event.get("text")
    if not isinstance(message, str) or not message.strip():
        message = parse.get("original_text") or parse.get("text")
    if not isinstance(message, str):
        return None
    message = message.strip()
    if not message or message.startswith("/"):
        return None

    predicted = parse.get("intent") if isinstance(parse.get("intent"), dict) else {}
    intent = predicted.get("name") if isinstance(predicted.get("name"), str) else None
    ranking = [
        (r.get("name"), float(r.get("confidence") or 0.0))
        for r in parse.get("intent_ranking") or []
        if isinstance(r, dict) and r.get("name") and r.get("name") != FALLBACK_INTENT
    ]
    ranking.sort(key=lambda r: r[1], reverse=True)
    if not ranking and intent and intent != FALLBACK_INTENT:
        ranking = [(intent, float(predicted.get("confidence") or 0.0))]
    top, confidence = ranking[0] if ranking else (None, 0.0)
    second, second_confidence = ranking[1] if len(ranking) > 1 else (None, 0.0)

    when = float(timestamp if timestamp is not None else event.get("timestamp") or 0.0)
    return LoggedMessage(
        event_id=int(event_id),
        sender_id=str(sender_id),
        text=message,
        timestamp=datetime.fromtimestamp(when, tz=timezone.utc),
        intent=intent,
        top_intent=top,
        second_intent=second,
        confidence=round(confidence, 6),
        margin=round(confidence - second_confidence, 6),
    )
