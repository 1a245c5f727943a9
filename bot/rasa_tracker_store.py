"""Rasa's SQL tracker store with conversation sessions of bounded length.

A WeChat resident keeps one sender id for life. Rasa loads and featurises the
whole current session on every message, so a resident who writes often within
one session (60 minutes of silence end one) makes every turn slower than the
last. This store closes a session once it holds `max_session_events` events and
opens the next one straight away, carrying over what the conversation needs
(every slot, a form in progress), exactly as Rasa does when a session expires
with `carry_over_slots_to_new_session`. Loading a tracker then never reads
more than about `max_session_events` events.

Nothing is deleted for length: the event log keeps every message for review
and retraining; a new session only marks where loading starts. What is
deleted is a resident's own conversation when they asked for it (删除我的信息,
bot.privacy.rights): the action that erases sets the `data_erased` slot, and
this store then deletes every row of that sender instead of saving the turn.
Rasa's own save would otherwise write the whole current session back (it
appends the events beyond the number it finds stored: none, after deletion).

Configured in endpoints.yml as `type: bot.rasa_tracker_store.BoundedSQLTrackerStore`.

Several Rasa servers (endpoints.scale.yml) use BoundedRedisTrackerStore instead:
the same bounds and erasure, Redis on the hot path, and the conversation log
written from Rasa's event broker by a process of its own (bot.conversation_stream):
the SQL write per turn was most of what the log cost a message
(benchmarks/README.md, "Per-message cost against the floor").
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from rasa.core.tracker_store import RedisTrackerStore, SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker, TrackerEventDiffEngine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

logger = logging.getLogger(__name__)

DEFAULT_MAX_SESSION_EVENTS = 200
# Set by the action that erased a resident's data (actions/answers.py).
ERASED_SLOT = "data_erased"


def erased_in_this_turn(tracker: DialogueStateTracker) -> bool:
    """Did an action of the latest turn erase the resident's data?"""
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return False
        if isinstance(event, SlotSet) and event.key == ERASED_SLOT and event.value:
            return True
    return False


def events_in_current_session(tracker: DialogueStateTracker) -> int:
    count = 0
    for event in reversed(tracker.events):
        if isinstance(event, SessionStarted):
            break
        count += 1
    return count


def session_restart_events(tracker: DialogueStateTracker) -> list[Event]:
    """Events that open a new session holding the tracker's current state."""
    events: list[Event] = [ActionExecuted(ACTION_SESSION_START_NAME), SessionStarted()]
    for slot in tracker.slots.values():
        if slot.value != slot.initial_value:
            events.append(SlotSet(slot.name, slot.value))
    if tracker.active_loop_name:
        events.append(ActiveLoop(tracker.active_loop_name))
    events.append(ActionExecuted(ACTION_LISTEN_NAME))
    return events


# How many of a tracker's events this store has already stored (set on the tracker
# object it hands out and after every save), so that save finds the new events
# without reading the stored tracker back, as Rasa's stores do.
STORED_EVENTS_ATTRIBUTE = "_stored_event_count"


def event_row(sender_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The row of Rasa's `events` table for an event (`event.as_dict()`), exactly as
    SQLTrackerStore.save writes it."""
    return {
        "sender_id": sender_id,
        "type_name": data.get("event"),
        "timestamp": data.get("timestamp"),
        "intent_name": (data.get("parse_data") or {}).get("intent", {}).get("name"),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


def sqlite_log_engine(url: Any) -> Engine:
    """An engine for a SQLite log file as bot.store.db makes them for the tickets:
    WAL (the review inbox reads while Rasa writes), `synchronous = NORMAL` (a commit
    no longer waits for the disk; at worst the last turns are lost on a power
    failure, never on a crash of the process) and connections kept open."""
    engine = sa.create_engine(
        url,
        poolclass=QueuePool,
        connect_args={"check_same_thread": False, "timeout": 5},
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    return engine


class BoundedSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose sessions end after `max_session_events` events."""

    def __init__(self, *args: Any, max_session_events: int | str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_session_events = int(max_session_events or DEFAULT_MAX_SESSION_EVENTS)
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            # Rasa's engine opens a connection per turn and commits in the
            # rollback journal's way: the disk wait was most of a turn's wall time.
            url = self.engine.url
            self.engine.dispose()
            self.engine = sqlite_log_engine(url)
            self.sessionmaker = sa.orm.sessionmaker(bind=self.engine)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        tracker = await super().retrieve(sender_id)
        if tracker is not None:
            setattr(tracker, STORED_EVENTS_ATTRIBUTE, len(tracker.events))
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        if erased_in_this_turn(tracker):
            self.forget(tracker.sender_id)
            return
        await self._save_new_events(tracker)
        # Only between turns: the assistant is listening, nothing is half-done.
        if (
            events_in_current_session(tracker) > self.max_session_events
            and tracker.latest_action_name == ACTION_LISTEN_NAME
        ):
            for event in session_restart_events(tracker):
                tracker.update(event)
            await self._save_new_events(tracker)
            logger.debug("started a new session for %s (length bound)", tracker.sender_id)

    async def _save_new_events(self, tracker: DialogueStateTracker) -> None:
        """The events beyond those this store handed out, in one INSERT; Rasa's own
        save (which counts the stored events first) for a tracker it did not hand
        out, or when an event broker wants the events too."""
        stored = getattr(tracker, STORED_EVENTS_ATTRIBUTE, None)
        if self.event_broker is not None or stored is None or stored > len(tracker.events):
            await super().save(tracker)
        else:
            rows = [
                event_row(tracker.sender_id, event.as_dict())
                for event in list(tracker.events)[stored:]
            ]
            if rows:
                with self.engine.begin() as connection:
                    connection.execute(self.SQLEvent.__table__.insert(), rows)
        setattr(tracker, STORED_EVENTS_ATTRIBUTE, len(tracker.events))

    def forget(self, sender_id: str) -> int:
        """Delete every stored event of `sender_id`; how many."""
        with self.session_scope() as session:
            deleted = (
                session.query(self.SQLEvent)
                .filter(self.SQLEvent.sender_id == sender_id)
                .delete(synchronize_session=False)
            )
            session.commit()
        logger.debug("forgot the conversation of a resident who asked for it")
        return int(deleted or 0)


# -- the fast path: Redis on the hot path, the log through the event broker -----------

# The body that tells the log writer to forget a sender (not a Rasa event type).
FORGET_EVENT = "conversation_forgotten"


def current_session_events(events: list[Event]) -> list[Event]:
    """The events of the latest session: from its `action_session_start` on
    (all of them when there is none)."""
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, ActionExecuted) and event.action_name == ACTION_SESSION_START_NAME:
            return events[index:]
    return events


def forget_body(sender_id: str) -> dict[str, Any]:
    return {"sender_id": sender_id, "event": FORGET_EVENT}


class BoundedRedisTrackerStore(RedisTrackerStore):
    """Redis holds each conversation's current session (what a turn loads); every
    new event goes to the event broker, whose consumer writes the conversation log
    (bot.conversation_stream). Sessions are bounded as in BoundedSQLTrackerStore;
    an erasing turn deletes the stored session and sends the log writer a
    `conversation_forgotten` body, after the sender's earlier events.

    A turn costs one GET and one SET of the current session, plus one pipelined
    write to the broker: no read-back to find the new events (Rasa's Redis store
    reads and merges the stored tracker again on save, and streaming events reads
    it once more), no SQL on the hot path. Without an event broker nothing would
    be logged for review, so the store refuses to start without one.
    """

    def __init__(self, *args: Any, max_session_events: int | str | None = None, **kwargs: Any):
        # Rasa hands a custom store `host=<the endpoint's url>`
        super().__init__(*args, **kwargs)
        if self.event_broker is None:
            raise ValueError(
                "BoundedRedisTrackerStore needs an event_broker in the endpoints file:"
                " it writes the conversation log (see endpoints.scale.yml)"
            )
        self.max_session_events = int(max_session_events or DEFAULT_MAX_SESSION_EVENTS)

    def _key(self, sender_id: str) -> str:
        return self.key_prefix + sender_id

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        stored = self.red.get(self._key(sender_id))
        if stored is None:
            return None
        tracker = self.deserialise_tracker(sender_id, stored)
        if tracker is not None:
            setattr(tracker, STORED_EVENTS_ATTRIBUTE, len(tracker.events))
        return tracker

    async def retrieve_full_tracker(self, sender_id: str) -> DialogueStateTracker | None:
        # Earlier sessions are in the conversation log only.
        return await self.retrieve(sender_id)

    async def _new_events(self, tracker: DialogueStateTracker) -> list[Event]:
        stored = getattr(tracker, STORED_EVENTS_ATTRIBUTE, None)
        if stored is not None and stored <= len(tracker.events):
            return list(tracker.events)[stored:]
        # a tracker this store did not hand out: compare with what is stored
        prior = await self.retrieve(tracker.sender_id)
        return TrackerEventDiffEngine.event_difference(prior, tracker)

    def _publish(self, bodies: list[dict[str, Any]]) -> None:
        publish_many = getattr(self.event_broker, "publish_many", None)
        if publish_many is not None:
            publish_many(bodies)
        else:
            for body in bodies:
                self.event_broker.publish(body)

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        sender_id = tracker.sender_id
        if erased_in_this_turn(tracker):
            self.red.delete(self._key(sender_id))
            self._publish([forget_body(sender_id)])
            return
        new_events = await self._new_events(tracker)
        # Only between turns: the assistant is listening, nothing is half-done.
        if (
            events_in_current_session(tracker) > self.max_session_events
            and tracker.latest_action_name == ACTION_LISTEN_NAME
        ):
            restart = session_restart_events(tracker)
            for event in restart:
                tracker.update(event)
            new_events += restart
            logger.debug("started a new session for %s (length bound)", sender_id)
        # The log first: a turn that cannot be logged is not saved either (the
        # resident reads utter_busy and sends it again).
        self._publish([{"sender_id": sender_id, **event.as_dict()} for event in new_events])
        session = current_session_events(list(tracker.events))
        serialised = json.dumps(Dialogue(sender_id, session).as_dict())
        self.red.set(self._key(sender_id), serialised, ex=timeout or self.record_exp)
        setattr(tracker, STORED_EVENTS_ATTRIBUTE, len(tracker.events))
