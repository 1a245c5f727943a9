"""The conversation log through a Redis stream: Rasa publishes, a writer stores.

With several Rasa servers (endpoints.scale.yml) the tracker store keeps only each
conversation's current session, in Redis (bot.rasa_tracker_store.
BoundedRedisTrackerStore). Every event still reaches the conversation log, the
SQL `events` table in Rasa's own schema that the review inbox and the worker's
ticket page read (bot.conversation_log), by this path:

- `RedisStreamEventBroker`, Rasa's event broker (`event_broker:` in the endpoints
  file), appends each event body to a Redis stream: one pipelined round trip a
  turn, in the Rasa process;
- `ConversationLogWriter` (`python -m bot conversation-log`, a process of its
  own) reads the stream in a consumer group, writes the rows in batches, one
  transaction each, and acknowledges (and deletes) the entries only after the
  commit. An entry is removed from the stream only once its row is committed, so
  nothing is lost while the database or the writer is down; entries read again
  after a failure (its own pending ones, or a dead writer's, claimed after
  `claim_idle_seconds`) are checked against the table first, so nothing is doubled.
  Several writers may run: the group hands each entry to one of them.

The body `{"event": "conversation_forgotten"}` (bot.rasa_tracker_store.FORGET_EVENT)
deletes every logged row of its sender, after the events before it in the stream
are written: a resident's 删除我的信息 erases the log as BoundedSQLTrackerStore does.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Table, and_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.rasa_tracker_store import FORGET_EVENT, event_row

logger = logging.getLogger(__name__)

DEFAULT_STREAM = "rasa:conversation-log"
DEFAULT_GROUP = "conversation-log-writer"


def redis_client(
    url: str | None, port: int | str | None = None, db: int | str | None = None
) -> redis.Redis:
    """A client for `url` (redis://...), or for a host name with port and db as
    Rasa's lock store takes them in the endpoints file."""
    options: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    if url and "://" in url:
        return redis.Redis.from_url(url, **options)
    return redis.Redis(host=url or "127.0.0.1", port=int(port or 6379), db=int(db or 0), **options)


try:  # Rasa is there in the Rasa server; the writer needs only what follows
    from rasa.core.brokers.broker import EventBroker
except ImportError:  # pragma: no cover - Rasa is a dependency of the project
    EventBroker = object  # type: ignore[misc,assignment]


class RedisStreamEventBroker(EventBroker):  # type: ignore[misc]
    """Rasa's event broker onto a Redis stream (`type: bot.conversation_stream.
    RedisStreamEventBroker`, with `url`, `port`, `db` and optionally `stream`)."""

    def __init__(
        self,
        url: str | None = None,
        port: int | str | None = None,
        db: int | str | None = None,
        stream: str = DEFAULT_STREAM,
        **_: Any,
    ) -> None:
        self.client = redis_client(url, port, db)
        self.stream = stream

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: Any, event_loop: Any = None
    ) -> RedisStreamEventBroker:
        return cls(broker_config.url, **broker_config.kwargs)

    def publish(self, event: dict[str, Any]) -> None:
        self.publish_many([event])

    def publish_many(self, events: list[dict[str, Any]]) -> None:
        """All of a turn's events in one round trip, in order."""
        if not events:
            return
        pipeline = self.client.pipeline(transaction=False)
        for event in events:
            pipeline.xadd(self.stream, {"event": json.dumps(event)})
        pipeline.execute()

    def is_ready(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    async def close(self) -> None:
        self.client.close()


# -- the writer -------------------------------------------------------------------------


def events_table(log_url: str) -> tuple[Engine, Table]:
    """The log's engine and `events` table, created as Rasa's SQLTrackerStore
    creates it (so the readers cannot tell who wrote it)."""
    from rasa.core.tracker_store import SQLTrackerStore

    store = SQLTrackerStore(None, host=log_url)
    return store.engine, store.SQLEvent.__table__


def body_row(body: dict[str, Any]) -> dict[str, Any]:
    """The row Rasa's SQLTrackerStore.save writes for an event body."""
    return event_row(body["sender_id"], {k: v for k, v in body.items() if k != "sender_id"})


@dataclass
class WriterStats:
    written: int = 0
    skipped_as_written: int = 0
    forgotten: int = 0


class ConversationLogWriter:
    """Moves events from the stream into the SQL log (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        log_url: str,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        batch: int = 500,
        claim_idle_seconds: float = 60.0,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch = batch
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.engine, self.table = events_table(log_url)
        self.stats = WriterStats()
        self._check_own_pending = True  # at start, and after a failed batch
        self._next_claim = 0.0
        self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _read(self, block_ms: int | None) -> tuple[list[tuple[bytes, dict]], bool]:
        """(entries, whether they may have been written before)."""
        if self._check_own_pending:
            replies = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=self.batch
            )
            entries = replies[0][1] if replies else []
            if entries:
                return entries, True
            self._check_own_pending = False
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + max(self.claim_idle_ms / 1000, 1.0)
            claimed = self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=self.batch
            )
            entries = [entry for entry in claimed[1] if entry[1]]
            if entries:
                logger.info("took over %d entries of a writer that stopped", len(entries))
                return entries, True
        replies = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.batch, block=block_ms
        )
        return (replies[0][1] if replies else []), False

    def _already_written(self, connection: Any, row: dict[str, Any]) -> bool:
        t = self.table.c
        found = connection.execute(
            select(t.id)
            .where(
                and_(
                    t.sender_id == row["sender_id"],
                    t.type_name == row["type_name"],
                    t.timestamp == row["timestamp"],
                )
            )
            .limit(1)
        ).first()
        return found is not None

    def _write(self, entries: list[tuple[bytes, dict]], seen_before: bool) -> None:
        rows: list[dict[str, Any]] = []
        with self.engine.begin() as connection:

            def flush() -> None:
                if rows:
                    connection.execute(self.table.insert(), rows)
                    self.stats.written += len(rows)
                    rows.clear()

            for _entry_id, fields in entries:
                raw = fields.get(b"event") or fields.get("event")
                try:
                    body = json.loads(raw)
                    sender_id = body["sender_id"]
                except (TypeError, ValueError, KeyError):
                    logger.warning("skipped a stream entry that is not an event body")
                    continue
                if body.get("event") == FORGET_EVENT:
                    flush()
                    connection.execute(
                        self.table.delete().where(self.table.c.sender_id == sender_id)
                    )
                    self.stats.forgotten += 1
                    continue
                row = body_row(body)
                if seen_before and self._already_written(connection, row):
                    self.stats.skipped_as_written += 1
                    continue
                rows.append(row)
            flush()

    def run_once(self, block_ms: int | None = 1000) -> int:
        """Read, write and acknowledge one batch; how many entries it held. A batch
        that cannot be written stays pending and is read again next time."""
        entries, seen_before = self._read(block_ms)
        if not entries:
            return 0
        try:
            self._write(entries, seen_before)
        except SQLAlchemyError:
            self._check_own_pending = True
            raise
        ids = [entry_id for entry_id, _ in entries]
        pipeline = self.client.pipeline(transaction=False)
        pipeline.xack(self.stream, self.group, *ids)
        pipeline.xdel(self.stream, *ids)
        pipeline.execute()
        return len(entries)

    def drain(self) -> int:
        """Write everything waiting now (tests, benchmarks); how many entries."""
        total = 0
        while count := self.run_once(block_ms=None):
            total += count
        return total

    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        retry_seconds: float = 2.0,
        linger_seconds: float = 0.5,
    ) -> None:
        """Until `should_stop()`: write batches; on a database or Redis failure wait
        and try again (nothing is acknowledged that was not committed). After a
        batch that was not full it waits `linger_seconds`, so that a quiet stream is
        written a few turns per transaction rather than one (the log may lag by
        that much; a turn never waits for it)."""
        while not should_stop():
            try:
                count = self.run_once()
            except (SQLAlchemyError, redis.RedisError) as error:
                logger.warning("conversation log: %s; retrying in %.0f s", error, retry_seconds)
                time.sleep(retry_seconds)
                continue
            if 0 < count < self.batch:
                time.sleep(linger_seconds)
