"""The one reader of Rasa's conversation log (bot.conversation_log): read-only,
resident texts only, for the review ingest and the worker's ticket page."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.conversation_log import ConversationLog, parse_user_event
from tests.fakes import TrackerLog


def test_only_resident_texts_are_messages() -> None:
    def event(text: str, **parse) -> str:
        return json.dumps({"event": "user", "text": text, "parse_data": parse})

    assert parse_user_event(1, "s", 1.0, event("/share_photo")) is None  # channel trigger
    assert parse_user_event(2, "s", 1.0, event('/greet{"x": 1}')) is None  # subscribe
    assert parse_user_event(3, "s", 1.0, event("   ")) is None
    assert parse_user_event(4, "s", 1.0, "not json") is None
    message = parse_user_event(
        5,
        "s",
        1.0,
        event(
            "暖气不热",
            intent={"name": "nlu_fallback", "confidence": 0.4},
            intent_ranking=[
                {"name": "nlu_fallback", "confidence": 0.4},
                {"name": "report_noise", "confidence": 0.35},
                {"name": "report_heating", "confidence": 0.30},
            ],
        ),
    )
    assert message is not None
    # the fallback is what the assistant did; its best guess is what is reviewed
    assert message.intent == "nlu_fallback"
    assert (message.top_intent, message.second_intent) == ("report_noise", "report_heating")
    assert message.confidence == 0.35 and round(message.margin, 3) == 0.05


def test_recent_messages_are_the_residents_own_oldest_first(tmp_path: Path) -> None:
    tracker = TrackerLog(tmp_path / "conversations.db")
    for i in range(5):
        tracker.user(f"第{i}句", sender="oA", at=1000.0 + i)
        tracker.bot("好的", sender="oA", at=1000.5 + i)
    tracker.user("/affirm", intent="affirm", sender="oA", at=1006.0)  # a button payload
    tracker.user("别人的话", sender="oB", at=1003.0)
    tracker.user("后来的话", sender="oA", at=2000.0)
    log = ConversationLog(tracker.url)
    before = datetime.fromtimestamp(1500, tz=timezone.utc)
    recent = log.recent_messages("oA", before, limit=3)
    assert [m.text for m in recent] == ["第2句", "第3句", "第4句"]
    assert recent[0].timestamp == datetime.fromtimestamp(1002.0, tz=timezone.utc)
    # the review ingest reads the same rows in id order
    events = log.user_events(0, 100)
    assert [e[1] for e in events] == ["oA"] * 6 + ["oB", "oA"]
    log.dispose()


def test_the_log_is_only_read(tmp_path: Path) -> None:
    tracker = TrackerLog(tmp_path / "conversations.db")
    tracker.user("你好")
    log = ConversationLog(tracker.url)
    engine = log.engine()
    assert engine is not None
    with pytest.raises(OperationalError, match="readonly"), engine.begin() as connection:
        connection.execute(text("DELETE FROM events"))
    assert len(log.user_events(0, 10)) == 1
    log.dispose()


def test_no_log_is_nothing_to_read(tmp_path: Path) -> None:
    log = ConversationLog(f"sqlite:///{tmp_path / 'missing.db'}")
    assert log.recent_messages("oA", datetime.now(timezone.utc)) == []
    assert log.user_events(0, 10) == []
    assert not (tmp_path / "missing.db").exists()  # never created from here
