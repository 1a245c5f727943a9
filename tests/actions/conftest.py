"""Action tests: rasa_sdk actions run against trackers, on a demo database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.routing.directory import apply_directory, load_directory_file
from bot.routing.locator import refresh_locator
from bot.settings import PROJECT_ROOT, get_settings
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head

DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))


@pytest.fixture
def demo_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DATABASE_URL points at a fresh database holding the demo directory."""
    url = f"sqlite:///{tmp_path / 'actions.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    refresh_locator()
    engine = make_engine(url)
    upgrade_to_head(engine)
    with session_scope(engine) as session:
        apply_directory(session, load_directory_file(PROJECT_ROOT / "data/grids/jinan-demo.yml"))
    engine.dispose()
    yield url
    get_settings.cache_clear()
    refresh_locator()


def make_tracker(
    text: str = "",
    intent: str | None = None,
    slots: dict[str, Any] | None = None,
    sender_id: str = "oResident1",
    message_id: str = "m1",
    metadata: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    channel: str = "wechat",
) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9} if intent else {},
        "entities": [],
        "message_id": message_id,
        "metadata": metadata or {},
    }
    user_event = {"event": "user", "text": text, "parse_data": latest, "input_channel": channel}
    all_slots = {slot: None for slot in DOMAIN["slots"]}
    all_slots.update(slots or {})
    return Tracker(
        sender_id=sender_id,
        slots=all_slots,
        latest_message=latest,
        events=(events or []) + [user_event],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m.get("response") for m in dispatcher.messages]


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
