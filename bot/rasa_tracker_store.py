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
"""

from __future__ import annotations

import logging
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

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


class BoundedSQLTrackerStore(SQLTrackerStore):
    """SQLTrackerStore whose sessions end after `max_session_events` events."""

    def __init__(self, *args: Any, max_session_events: int | str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_session_events = int(max_session_events or DEFAULT_MAX_SESSION_EVENTS)

    async def save(self, tracker: DialogueStateTracker) -> None:
        if erased_in_this_turn(tracker):
            self.forget(tracker.sender_id)
            return
        await super().save(tracker)
        # Only between turns: the assistant is listening, nothing is half-done.
        if (
            events_in_current_session(tracker) > self.max_session_events
            and tracker.latest_action_name == ACTION_LISTEN_NAME
        ):
            for event in session_restart_events(tracker):
                tracker.update(event)
            await super().save(tracker)
            logger.debug("started a new session for %s (length bound)", tracker.sender_id)

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
