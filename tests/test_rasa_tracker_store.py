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


def test_an_erasure_turn_deletes_the_conversation_instead_of_saving_it(tmp_path):
    """After 删除我的信息 nothing of that resident's conversation comes back:
    Rasa's own save would write the whole session back once its rows are gone."""
    store = store_at(tmp_path / "tracker.db", max_events=100)

    async def scenario() -> tuple[DialogueStateTracker, DialogueStateTracker]:
        me = DialogueStateTracker("oMe", DOMAIN.slots)
        other = DialogueStateTracker("oMe2", DOMAIN.slots)
        for i in range(3):
            one_turn(me, i)
            one_turn(other, i)
        await store.save(me)
        await store.save(other)
        me = await store.retrieve("oMe")
        me.update(UserUttered("是", {"name": "affirm", "confidence": 1.0}))
        me.update(ActionExecuted("action_answer_question"))
        me.update(SlotSet("data_erased", True))
        me.update(ActionExecuted("action_listen"))
        await store.save(me)
        return await store.retrieve_full_tracker("oMe"), await store.retrieve("oMe2")

    me, other = asyncio.run(scenario())
    assert me is None  # nothing stored under that sender id
    assert len(other.events) == 9  # another resident's conversation is untouched

    # the next message starts afresh: it is saved as usual
    async def next_turn() -> DialogueStateTracker:
        # as Rasa does for an unknown sender: a new tracker
        tracker = await store.retrieve("oMe") or DialogueStateTracker("oMe", DOMAIN.slots)
        one_turn(tracker, 9)
        await store.save(tracker)
        return await store.retrieve_full_tracker("oMe")

    after = asyncio.run(next_turn())
    assert [e.text for e in after.events if isinstance(e, UserUttered)] == ["消息9"]


def test_a_sqlite_log_is_in_wal_mode_and_readable_while_written(tmp_path):
    """The review inbox (read-only) reads the log while Rasa writes; commits do not
    wait for the disk (synchronous NORMAL, as for the tickets' database)."""
    import json

    from bot.conversation_log import ConversationLog

    store = store_at(tmp_path / "tracker.db", max_events=100)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL

    async def turns(first: int) -> None:
        tracker = await store.retrieve("oLog") or DialogueStateTracker("oLog", DOMAIN.slots)
        for i in range(first, first + 2):
            one_turn(tracker, i)
            await store.save(tracker)

    log = ConversationLog(f"sqlite:///{tmp_path / 'tracker.db'}")
    asyncio.run(turns(0))
    assert [json.loads(row[3])["text"] for row in log.user_events(0, 10)] == ["消息0", "消息1"]
    asyncio.run(turns(2))  # written while the reader's engine is open
    assert len(log.user_events(0, 10)) == 4
