"""The fast path: Redis tracker store, the log through a Redis stream, the writer.

Needs Redis (TEST_REDIS_URL; skipped, saying so, when unset); the log is SQLite
here (PostgreSQL in tests/integration when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import create_engine, text

from bot.conversation_log import ConversationLog
from bot.conversation_stream import (
    ConversationLogWriter,
    RedisStreamEventBroker,
    body_row,
    redis_client,
)
from bot.rasa_tracker_store import (
    BoundedRedisTrackerStore,
    BoundedSQLTrackerStore,
    events_in_current_session,
)
from bot.settings import PROJECT_ROOT
from tests.test_rasa_tracker_store import one_turn

DOMAIN = Domain.load(str(PROJECT_ROOT / "domain.yml"))


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL not set: no Redis for the tracker store and the stream")
    try:
        redis_client(url).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis at TEST_REDIS_URL does not answer: {exc}")
    return url


class FastPath:
    """A store, its broker and a writer on a stream and key prefix of their own."""

    def __init__(self, redis_url: str, log: Path, max_events: int = 200) -> None:
        self.tag = f"test{uuid.uuid4().hex[:12]}"
        self.stream = f"{self.tag}:log"
        self.client = redis_client(redis_url)
        self.broker = RedisStreamEventBroker(redis_url, stream=self.stream)
        self.store = BoundedRedisTrackerStore(
            DOMAIN,
            host=self.client.connection_pool.connection_kwargs["host"],
            port=self.client.connection_pool.connection_kwargs["port"],
            db=self.client.connection_pool.connection_kwargs["db"],
            key_prefix=self.tag,
            event_broker=self.broker,
            max_session_events=max_events,
        )
        self.log_url = f"sqlite:///{log}"
        self.writer = self.new_writer("writer-1")

    def new_writer(self, consumer: str, claim_idle_seconds: float = 60.0) -> ConversationLogWriter:
        return ConversationLogWriter(
            self.client,
            self.log_url,
            stream=self.stream,
            consumer=consumer,
            claim_idle_seconds=claim_idle_seconds,
        )

    def log_rows(self, sender: str | None = None) -> list[tuple]:
        engine = create_engine(self.log_url)
        sql = "SELECT sender_id, type_name, intent_name, action_name, data FROM events"
        with engine.connect() as connection:
            rows = connection.execute(
                text(sql + (" WHERE sender_id = :s" if sender else "") + " ORDER BY id"),
                {"s": sender},
            ).all()
        engine.dispose()
        return [tuple(row) for row in rows]

    def cleanup(self) -> None:
        keys = list(self.client.scan_iter(f"{self.tag}*"))
        if keys:
            self.client.delete(*keys)


@pytest.fixture
def fast(redis_url: str, tmp_path: Path) -> Iterator[FastPath]:
    path = FastPath(redis_url, tmp_path / "log.db")
    yield path
    path.cleanup()


def converse(store, sender: str, turns: int, first: int = 0) -> None:  # noqa: ANN001
    async def scenario() -> None:
        for i in range(first, first + turns):
            # as Rasa does for an unknown sender: a new tracker
            tracker = await store.retrieve(sender) or DialogueStateTracker(sender, DOMAIN.slots)
            one_turn(tracker, i)
            await store.save(tracker)

    asyncio.run(scenario())


def test_the_log_is_what_the_sql_store_writes(fast: FastPath, tmp_path: Path):
    """The review inbox cannot tell the writer's rows from BoundedSQLTrackerStore's."""
    sql_store = BoundedSQLTrackerStore(DOMAIN, host=f"sqlite:///{tmp_path / 'sql.db'}")
    for store in (fast.store, sql_store):
        converse(store, "oResident", 4)
    assert fast.writer.drain() > 0
    sql_engine = create_engine(f"sqlite:///{tmp_path / 'sql.db'}")
    with sql_engine.connect() as connection:
        expected = connection.execute(
            text(
                "SELECT sender_id, type_name, intent_name, action_name, data"
                " FROM events ORDER BY id"
            )
        ).all()
    sql_engine.dispose()

    def comparable(rows: list) -> list:  # timestamps differ between the two runs
        return [
            (*row[:4], {k: v for k, v in json.loads(row[4]).items() if k != "timestamp"})
            for row in rows
        ]

    assert comparable(fast.log_rows()) == comparable(expected)
    messages = ConversationLog(fast.log_url).user_events(0, 100)
    assert [json.loads(m[3])["text"] for m in messages] == [f"消息{i}" for i in range(4)]


def test_sessions_stay_bounded_in_redis_and_the_log_keeps_everything(redis_url, tmp_path):
    fast = FastPath(redis_url, tmp_path / "log.db", max_events=30)
    try:

        async def scenario() -> DialogueStateTracker:
            tracker = DialogueStateTracker("oLong", DOMAIN.slots)
            tracker.update(SlotSet("known_address", "和平新村社区3号楼"))
            tracker.update(ActiveLoop("report_form"))
            tracker.update(ActionExecuted("action_listen"))
            await fast.store.save(tracker)
            for i in range(100):
                tracker = await fast.store.retrieve("oLong")
                one_turn(tracker, i)
                await fast.store.save(tracker)
                stored = await fast.store.retrieve("oLong")
                assert events_in_current_session(stored) <= 30 + 10
                assert len(stored.events) <= 30 + 10  # only the current session is loaded
            return await fast.store.retrieve("oLong")

        tracker = asyncio.run(scenario())
        assert tracker.get_slot("known_address") == "和平新村社区3号楼"
        assert tracker.active_loop_name == "report_form"
        fast.writer.drain()
        users = [row for row in fast.log_rows("oLong") if row[1] == "user"]
        assert len(users) == 100
        assert sum(row[1] == "session_started" for row in fast.log_rows("oLong")) > 1
    finally:
        fast.cleanup()


def test_an_erasure_deletes_the_session_and_the_logged_rows(fast: FastPath):
    converse(fast.store, "oMe", 3)
    converse(fast.store, "oOther", 3)
    fast.writer.drain()  # some of it already in the log, the rest still in the stream
    converse(fast.store, "oMe", 1, first=3)

    async def erase() -> None:
        me = await fast.store.retrieve("oMe")
        me.update(UserUttered("是", {"name": "affirm", "confidence": 1.0}))
        me.update(ActionExecuted("action_answer_question"))
        me.update(SlotSet("data_erased", True))
        me.update(ActionExecuted("action_listen"))
        await fast.store.save(me)

    asyncio.run(erase())
    fast.writer.drain()
    assert asyncio.run(fast.store.retrieve("oMe")) is None
    assert fast.log_rows("oMe") == []
    assert len([r for r in fast.log_rows("oOther") if r[1] == "user"]) == 3

    converse(fast.store, "oMe", 1, first=9)  # the next message starts afresh
    fast.writer.drain()
    assert [json.loads(r[4])["text"] for r in fast.log_rows("oMe") if r[1] == "user"] == ["消息9"]


def test_a_batch_committed_but_not_acknowledged_is_not_written_twice(fast: FastPath):
    converse(fast.store, "oResident", 3)
    entries, seen_before = fast.writer._read(block_ms=None)
    fast.writer._write(entries, seen_before)  # committed; the writer dies before XACK
    rows = fast.log_rows()

    again = fast.new_writer("writer-1")  # restarted under the same name
    assert again.drain() == len(entries)
    assert again.stats.skipped_as_written == len(entries)
    assert fast.log_rows() == rows


def test_another_writer_takes_over_what_a_dead_one_had_read(fast: FastPath):
    converse(fast.store, "oResident", 2)
    entries, _ = fast.writer._read(block_ms=None)  # read, then the writer dies
    assert entries
    other = fast.new_writer("writer-2", claim_idle_seconds=0)
    assert other.drain() == len(entries)
    assert len([r for r in fast.log_rows() if r[1] == "user"]) == 2
    assert fast.client.xlen(fast.stream) == 0  # written entries leave the stream


def test_the_store_refuses_to_run_without_a_broker(redis_url):
    with pytest.raises(ValueError, match="event_broker"):
        BoundedRedisTrackerStore(DOMAIN, host="127.0.0.1", key_prefix="unused")


def test_an_event_row_is_rasas():
    body = {
        "sender_id": "oX",
        "event": "user",
        "timestamp": 1.5,
        "text": "你好",
        "parse_data": {"intent": {"name": "greet", "confidence": 0.9}},
    }
    row = body_row(body)
    assert row["sender_id"] == "oX"
    assert (row["type_name"], row["intent_name"], row["action_name"]) == ("user", "greet", None)
    assert json.loads(row["data"]) == {k: v for k, v in body.items() if k != "sender_id"}
    action = body_row({"sender_id": "oX", "event": "action", "name": "utter_greet"})
    assert (action["type_name"], action["action_name"]) == ("action", "utter_greet")


def test_endpoints_scale_yml_builds_the_store_and_its_broker(redis_url, monkeypatch):
    """What Rasa builds from endpoints.scale.yml: this store, fed by this broker."""
    from rasa.core.brokers.broker import EventBroker
    from rasa.core.tracker_store import TrackerStore
    from rasa.utils.endpoints import read_endpoint_config

    connection = redis_client(redis_url).connection_pool.connection_kwargs
    for name, value in (
        ("REDIS_HOST", connection["host"]),
        ("REDIS_PORT", str(connection["port"])),
        ("REDIS_DB", str(connection["db"])),
        ("ACTION_ENDPOINT_URL", "http://127.0.0.1:9/webhook"),
        ("MODEL_SERVER_URL", "http://127.0.0.1:9/model"),
        ("RASA_AUTH_TOKEN", "x"),
    ):
        monkeypatch.setenv(name, value)
    endpoints = str(PROJECT_ROOT / "endpoints.scale.yml")
    broker = asyncio.run(EventBroker.create(read_endpoint_config(endpoints, "event_broker")))
    assert isinstance(broker, RedisStreamEventBroker) and broker.is_ready()
    store = TrackerStore.create(read_endpoint_config(endpoints, "tracker_store"), DOMAIN, broker)
    store = getattr(store, "_tracker_store", store)  # Rasa wraps it in a FailSafeTrackerStore
    assert isinstance(store, BoundedRedisTrackerStore)
    assert store.event_broker is broker and store.max_session_events == 200


def test_the_writer_keeps_on_until_told_to_stop(fast: FastPath):
    converse(fast.store, "oResident", 2)
    rounds = []
    fast.writer.run(should_stop=lambda: rounds.append(1) or len(rounds) > 2, linger_seconds=0)
    assert len([r for r in fast.log_rows() if r[1] == "user"]) == 2
