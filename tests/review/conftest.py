"""Fixtures of the review inbox tests: a conversation log, the web app, clients.

- `tracker`: a `TrackerLog` writing Rasa's `events` table (the columns and
  index of Rasa 3.6's SQLTrackerStore) into the web app's conversation log
  file (settings.tracker_database_url); `tracker.user(...)` logs a resident
  message with a parse_data like Rasa's.
- `nlu_dir`: a copy of data/nlu (what the export writes into).
- The web fixtures of tests/web/conftest.py (demo directory, one account per
  role), with the review settings pointed at the two above and the background
  copy off (tests copy when they want to).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bot.conversation_log import ConversationLog
from bot.review.ingest import IngestResult, ingest
from bot.settings import PROJECT_ROOT, Settings, load_settings
from tests.browser.conftest import browser, loop_thread, screenshots  # noqa: F401  (fixtures)
from tests.web.conftest import (  # noqa: F401  (fixtures)
    ADMIN_PASSWORD,
    NOWHERE,
    SECRET,
    admin_client,
    anon_client,
    client_factory,
    staff_client,
    web_app,
    web_db_url,
    web_engine,
    web_server,
    web_template_db,
    worker_client,
)

RASA_EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS events ("
    "id INTEGER NOT NULL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
    "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
    "action_name VARCHAR(255), data TEXT)",
    "CREATE INDEX IF NOT EXISTS ix_events_sender_id ON events (sender_id)",
)


class TrackerLog:
    """Writes events the way Rasa's SQL tracker store does (plain SQL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.clock = time.time() - 3600
        with sqlite3.connect(path) as connection:
            for ddl in RASA_EVENTS_DDL:
                connection.execute(ddl)

    def _insert(
        self,
        sender: str,
        type_name: str,
        stamp: float,
        intent: str | None,
        action: str | None,
        data: dict,
    ) -> int:
        with sqlite3.connect(self.path) as connection:
            cursor = connection.execute(
                "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, "
                "data) VALUES (?, ?, ?, ?, ?, ?)",
                (sender, type_name, stamp, intent, action, json.dumps(data)),
            )
            return int(cursor.lastrowid)

    def user(
        self,
        text: str,
        intent: str | None = "greet",
        confidence: float = 0.9,
        second: str | None = None,
        second_confidence: float = 0.0,
        *,
        sender: str = "oResident1",
        at: float | None = None,
        fallback: bool = False,
        original: str | None = None,
    ) -> int:
        """Log a resident message (and the action_listen after it); its event id."""
        self.clock += 60
        stamp = at if at is not None else self.clock
        ranking = []
        if intent:
            ranking.append({"name": intent, "confidence": confidence})
        if second:
            ranking.append({"name": second, "confidence": second_confidence})
        predicted = {"name": intent, "confidence": confidence}
        if fallback:
            predicted = {"name": "nlu_fallback", "confidence": 0.4}
            ranking.insert(0, dict(predicted))
        parse = {
            "intent": predicted,
            "entities": [],
            "text": text,
            "message_id": f"m{stamp}",
            "metadata": {},
            "intent_ranking": ranking,
        }
        if original is not None:
            parse["original_text"] = original
        data = {
            "event": "user",
            "timestamp": stamp,
            "metadata": {},
            "text": original if original is not None else text,
            "parse_data": parse,
            "input_channel": "wechat",
            "message_id": f"m{stamp}",
        }
        event_id = self._insert(sender, "user", stamp, predicted["name"], None, data)
        self._insert(
            sender,
            "action",
            stamp + 0.5,
            None,
            "action_listen",
            {"event": "action", "timestamp": stamp + 0.5, "name": "action_listen"},
        )
        return event_id


@pytest.fixture
def tracker_path(tmp_path: Path) -> Path:
    return tmp_path / "conversations.db"


@pytest.fixture
def tracker(tracker_path: Path) -> TrackerLog:
    return TrackerLog(tracker_path)


@pytest.fixture
def nlu_dir(tmp_path: Path) -> Path:
    target = tmp_path / "nlu"
    target.mkdir()
    for path in (PROJECT_ROOT / "data" / "nlu").glob("*.yml"):
        if path.name != "reviewed.yml":
            shutil.copy(path, target / path.name)
    return target


@pytest.fixture
def web_settings(web_db_url: str, tracker_path: Path, nlu_dir: Path) -> Settings:  # noqa: F811
    return replace(
        load_settings(),
        database_url=web_db_url,
        tracker_database_url=f"sqlite:///{tracker_path}",
        web_secret_key=SECRET,
        admin_password=ADMIN_PASSWORD,
        web_cookie_secure=False,
        wecom_api_base=NOWHERE,
        wechat_api_base=NOWHERE,
        rasa_url=NOWHERE,
        nlu_data_dir=nlu_dir,
        review_ingest_interval_seconds=0,
    )


@pytest.fixture
def copy_log(web_engine: Engine, tracker: TrackerLog) -> Iterator:  # noqa: F811
    """`copy_log()`: ingest everything new of the test's log into the test database."""
    log = ConversationLog(tracker.url)

    def run() -> IngestResult:
        return ingest(web_engine, log)

    yield run
    log.dispose()
