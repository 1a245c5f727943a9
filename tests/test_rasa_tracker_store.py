"""The length-bounded SQL tracker store keeps turns cheap and state intact."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_tracker_store import BoundedSQLTrackerStore, events_in_current_session
from bot.settings import PROJECT_ROOT

DOMAIN = Domain.load(str(PROJECT_ROOT / "domain.yml"))


def store_at(path: Path, max_events: int) -> BoundedSQLTrackerStore:
    return BoundedSQLTrackerStore(
        domain=DOMAIN, host=f"sqlite:///{path}", max_session_events=max_events
    )


def one_turn(tracker: DialogueStateTracker, i: int) -> None:
    tracker.update(UserUttered(f"消息{i}", {"name": "greet", "confidence": 1.0}))
    tracker.update(ActionExecuted("utter_greet"))
    tracker.update(ActionExecuted("action_listen"))


def test_sessions_stay_bounded_and_carry_the_state(tmp_path):
    store = store_at(tmp_path / "tracker.db", max_events=30)

    async def scenario() -> DialogueStateTracker:
        tracker = DialogueStateTracker("oResident", DOMAIN.slots)
        tracker.update(SlotSet("known_address", "和平新村社区3号楼"))
        tracker.update(ActiveLoop("report_form"))
        tracker.update(SlotSet("requested_slot", "address"))
        tracker.update(ActionExecuted("action_listen"))
        await store.save(tracker)
        for i in range(200):
            tracker = await store.retrieve("oResident")
            one_turn(tracker, i)
            await store.save(tracker)
            assert events_in_current_session(await store.retrieve("oResident")) <= 30 + 10
        return await store.retrieve("oResident")

    tracker = asyncio.run(scenario())
    assert tracker.get_slot("known_address") == "和平新村社区3号楼"
    assert tracker.get_slot("requested_slot") == "address"
    assert tracker.active_loop_name == "report_form"
    assert tracker.latest_action_name == "action_listen"

    # nothing is lost from the log: every message is still there
    full = asyncio.run(store.retrieve_full_tracker("oResident"))
    assert sum(isinstance(e, UserUttered) for e in full.events) == 200


def test_short_conversations_are_untouched(tmp_path):
    store = store_at(tmp_path / "tracker.db", max_events=100)

    async def scenario() -> DialogueStateTracker:
        tracker = DialogueStateTracker("oShort", DOMAIN.slots)
        for i in range(5):
            one_turn(tracker, i)
        await store.save(tracker)
        return await store.retrieve("oShort")

    tracker = asyncio.run(scenario())
    assert len(tracker.events) == 15


@pytest.mark.parametrize("value", [None, "", "50"])
def test_max_session_events_from_endpoints_yml(tmp_path, value):
    store = store_at(tmp_path / "t.db", max_events=value)
    assert store.max_session_events == (50 if value == "50" else 200)
