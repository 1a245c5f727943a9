"""Copying resident messages from Rasa's log into the review inbox, and their tickets."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from bot.conversation_log import ConversationLog
from bot.review.ingest import ingest, watermark
from bot.review.text import group_key, text_hash
from bot.store.db import session_scope
from bot.store.models import Grid, ReviewMessage, Ticket, utcnow
from bot.tickets import service
from tests.fakes import TrackerLog
from tests.web.conftest import add_ticket

HPXC = "和平新村3号楼2单元501"  # grid HPXC-01


def messages(engine) -> list[ReviewMessage]:
    with session_scope(engine, readonly=True) as session:
        return list(session.execute(select(ReviewMessage).order_by(ReviewMessage.id)).scalars())


def grid_id(engine, code: str) -> int:
    with session_scope(engine, readonly=True) as session:
        return session.execute(select(Grid.id).where(Grid.code == code)).scalar_one()


# -- groups -------------------------------------------------------------------------------


def test_near_duplicates_share_a_group() -> None:
    same = ["3号楼暖气不热！", "5号楼 暖气不热", "十号楼暖氣不熱。。", "３号楼暖气不热😡"]
    assert len({text_hash(t) for t in same}) == 1
    assert text_hash("暖气不热") != text_hash("暖气太热")
    assert group_key("🐶") == "🐶"  # nothing left after stripping: still a group of its own
    assert group_key("👍") == group_key("赞")  # gesture emoji read as their words


# -- ingest -------------------------------------------------------------------------------


def test_ingest_copies_each_resident_message_once(web_engine, tracker: TrackerLog) -> None:
    tracker.user("你好", "greet", 0.95)
    tracker.user("/share_photo", "share_photo", 1.0)
    tracker.user("暖气不热", "report_heating", 0.7, "report_noise", 0.2)
    log = ConversationLog(tracker.url)
    first = ingest(web_engine, log)
    assert (first.added, first.skipped, first.caught_up) == (2, 1, True)
    again = ingest(web_engine, log)
    assert again.added == 0
    tracker.user("楼下狗叫", "report_pet", 0.5, sender="oOther")
    assert ingest(web_engine, log).added == 1
    rows = messages(web_engine)
    assert [r.text for r in rows] == ["你好", "暖气不热", "楼下狗叫"]
    heating = rows[1]
    assert (heating.top_intent, heating.second_intent) == ("report_heating", "report_noise")
    assert round(heating.margin, 3) == 0.5 and heating.decision_id is None
    with session_scope(web_engine, readonly=True) as session:
        assert watermark(session) == rows[-1].event_id
    log.dispose()


def test_ingest_in_small_batches_and_budget(web_engine, tracker: TrackerLog) -> None:
    for i in range(7):
        tracker.user(f"消息{i}", "greet", 0.9)
    log = ConversationLog(tracker.url)
    partial = ingest(web_engine, log, batch_size=2, max_batches=2)
    assert partial.added == 4 and not partial.caught_up
    rest = ingest(web_engine, log, batch_size=2)
    assert rest.added == 3 and rest.caught_up
    assert len(messages(web_engine)) == 7
    log.dispose()


def test_no_log_yet_is_not_an_error(web_engine, tmp_path) -> None:
    assert ConversationLog(f"sqlite:///{tmp_path / 'missing.db'}").engine() is None
    assert not (tmp_path / "missing.db").exists()  # never created from here
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    log = ConversationLog(f"sqlite:///{empty}")
    assert ingest(web_engine, log).added == 0  # no events table yet
    log.dispose()


def test_messages_lead_to_their_tickets_and_workers_changes(
    web_engine, tracker: TrackerLog
) -> None:
    now = utcnow()
    noise_text = "楼下的狗天天晚上叫"
    tracker.user(noise_text, "report_noise", 0.62, "report_pet", 0.3, at=now.timestamp() - 600)
    wrong_grid = "路灯坏了好几天了"
    tracker.user(wrong_grid, "report_facility", 0.9, at=now.timestamp() - 500, sender="oB")
    tracker.user("谢谢", "thank", 0.99, at=now.timestamp() - 400)
    noise = add_ticket(
        web_engine, HPXC, "NOISE", original_text=noise_text, now=now - timedelta(seconds=590)
    )
    lamp = add_ticket(
        web_engine,
        HPXC,
        "FACILITY",
        original_text=wrong_grid,
        sender_id="oB",
        now=now - timedelta(seconds=480),
    )
    log = ConversationLog(tracker.url)
    result = ingest(web_engine, log)
    assert result.linked == 2
    rows = {r.text: r for r in messages(web_engine)}
    assert rows[noise_text].worker_change is None and rows["谢谢"].ticket_id is None
    assert rows[noise_text].grid_id == grid_id(web_engine, "HPXC-01")

    # A worker says it is about pets, another moves the lamp to another grid.
    with session_scope(web_engine) as session:
        service.recategorise(session, noise, "PETS", "worker:1:王芳", reason="是狗的问题")
        service.transfer(session, lamp, "HPXC-02", "worker:1:王芳", reason="不归我们网格")
    assert ingest(web_engine, log).updated == 2
    rows = {r.text: r for r in messages(web_engine)}
    assert (rows[noise_text].worker_change, rows[noise_text].suggested_intent) == (
        "category",
        "report_pet",
    )
    lamp_row = rows[wrong_grid]
    assert (lamp_row.worker_change, lamp_row.suggested_intent) == ("grid", "report_facility")
    assert lamp_row.grid_id == grid_id(web_engine, "HPXC-02")
    with session_scope(web_engine, readonly=True) as session:
        number = session.get(Ticket, lamp_row.ticket_id).number
    assert number == lamp
    log.dispose()


def test_a_ticket_opened_after_the_copy_is_linked_later(web_engine, tracker: TrackerLog) -> None:
    now = utcnow()
    tracker.user("小区垃圾没人收", "report_sanitation", 0.8, at=now.timestamp() - 120)
    log = ConversationLog(tracker.url)
    ingest(web_engine, log)
    assert messages(web_engine)[0].ticket_id is None
    # the resident still had to give an address: the ticket comes a minute later
    add_ticket(web_engine, HPXC, "SANITATION", original_text=None, now=now - timedelta(seconds=60))
    assert ingest(web_engine, log).linked == 1
    assert messages(web_engine)[0].ticket_id is not None
    log.dispose()


def test_real_rasa_tracker_store_events_are_read(web_engine, tmp_path) -> None:
    """The log as Rasa 3.6's SQLTrackerStore writes it (not our imitation)."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.settings import PROJECT_ROOT

    domain = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    path = tmp_path / "rasa-tracker.db"
    store = SQLTrackerStore(domain=domain, host=f"sqlite:///{path}")
    tracker = DialogueStateTracker("oRasa", domain.slots)
    parse = {
        "intent": {"name": "report_heating", "confidence": 0.81},
        "intent_ranking": [
            {"name": "report_heating", "confidence": 0.81},
            {"name": "report_facility", "confidence": 0.11},
        ],
        "entities": [],
        "text": "暖气不热",
        "original_text": "暖氣不熱",
    }
    tracker.update(UserUttered("暖氣不熱", parse["intent"], parse_data=parse, message_id="w1"))
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered("/share_photo", {"name": "share_photo", "confidence": 1.0}))
    asyncio.run(store.save(tracker))
    store.engine.dispose()

    log = ConversationLog(f"sqlite:///{path}")
    result = ingest(web_engine, log)
    assert (result.added, result.skipped) == (1, 1)
    (row,) = messages(web_engine)
    assert (row.text, row.sender_id, row.top_intent) == ("暖氣不熱", "oRasa", "report_heating")
    assert round(row.confidence, 2) == 0.81 and round(row.margin, 2) == 0.70
    log.dispose()
