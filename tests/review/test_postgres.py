"""The review inbox on PostgreSQL: the log in the tickets' database, as in production.

Runs when TEST_DATABASE_URL names a PostgreSQL database (e.g.
postgresql://postgres@127.0.0.1:5432/test); a schema of its own is created,
migrated and dropped. Rasa's `events` table is created in that schema with the
columns of Rasa 3.6's SQLTrackerStore.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from bot.conversation_log import ConversationLog
from bot.review.export import export_reviewed, nlu_examples
from bot.review.inbox import InboxQuery, decide, load_inbox, undo
from bot.review.ingest import ingest
from bot.review.insights import load_insights
from bot.review.text import text_hash
from bot.routing.directory import apply_directory, load_directory_file
from bot.routing.locator import get_locator
from bot.settings import PROJECT_ROOT
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.store.models import utcnow
from bot.tickets import service

pytestmark = pytest.mark.postgres

EVENTS_DDL = (
    "CREATE TABLE events (id SERIAL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
    "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
    "action_name VARCHAR(255), data TEXT)"
)


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base or make_url(base).get_backend_name() != "postgresql":
        pytest.skip("TEST_DATABASE_URL (PostgreSQL) not set")
    schema = f"test_review_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        with session_scope(engine) as session:
            apply_directory(
                session, load_directory_file(PROJECT_ROOT / "data/grids/jinan-demo.yml")
            )
        with engine.begin() as conn:
            conn.execute(text(EVENTS_DDL))
        yield engine, url
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def log_message(engine: Engine, sender: str, message: str, ranking: list, at: float) -> None:
    data = {
        "event": "user",
        "timestamp": at,
        "text": message,
        "parse_data": {"intent": ranking[0], "intent_ranking": ranking, "text": message},
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (sender_id, type_name, timestamp, intent_name, data) "
                "VALUES (:s, 'user', :t, :i, :d)"
            ),
            {"s": sender, "t": at, "i": ranking[0]["name"], "d": json.dumps(data)},
        )


def test_inbox_decisions_and_export_on_postgresql(pg, tmp_path: Path) -> None:
    engine, url = pg
    now = time.time()
    pairs = [
        ("oA", "楼下的狗天天晚上叫", "report_noise", 0.6, "report_pet"),
        ("oB", "3号楼暖气不热", "report_heating", 0.4, "report_facility"),
        ("oC", "5号楼暖气不热！", "report_heating", 0.8, "report_facility"),
        ("oD", "明天会下雨吗", "greet", 0.3, "out_of_scope"),
    ]
    for i, (sender, message, top, confidence, second) in enumerate(pairs):
        ranking = [
            {"name": top, "confidence": confidence},
            {"name": second, "confidence": (1 - confidence) / 2},
        ]
        log_message(engine, sender, message, ranking, now - 600 + i * 60)
    with session_scope(engine) as session:
        located = get_locator(session).locate_text("和平新村3号楼2单元501")
        ticket = service.open_ticket(
            session,
            sender_id="oA",
            channel="wechat",
            message_id="x1",
            category_code="NOISE",
            description="狗叫",
            original_text="楼下的狗天天晚上叫",
            location=located,
            now=utcnow() - timedelta(seconds=590),
        )
        service.recategorise(session, ticket, "PETS", "worker:1:王芳")

    log = ConversationLog(url)  # the same database, as with PostgreSQL in production
    result = ingest(engine, log)
    assert (result.added, result.linked) == (4, 1)
    assert ingest(engine, log).added == 0  # the overlap re-read finds nothing new

    with session_scope(engine, readonly=True) as session:
        for status in ("open", "reviewed", "all"):
            for sort in ("confidence", "margin", "newest", "count"):
                load_inbox(session, InboxQuery(status=status, sort=sort))
        page = load_inbox(session, InboxQuery(), "Asia/Shanghai")
        assert (page.groups_total, page.messages_total) == (3, 4)
        assert [r.text for r in page.rows] == [
            "明天会下雨吗",
            "5号楼暖气不热！",
            "楼下的狗天天晚上叫",
        ]
        dog = page.rows[-1]
        assert dog.suggested_intent == "report_pet" and dog.tickets[0].change
        filtered = load_inbox(
            session, InboxQuery(intent="report_heating", min_conf=0.5, grid="", q="暖气")
        )
        assert [r.text for r in filtered.rows] == ["5号楼暖气不热！"]

    with session_scope(engine) as session:
        assert decide(session, [text_hash("楼下的狗天天晚上叫")], "suggested", "admin").groups == 1
        assert decide(session, [text_hash("3号楼暖气不热")], "confirm", "admin").messages == 2
        assert decide(session, [text_hash("明天会下雨吗")], "out_of_scope", "admin").groups == 1
    with session_scope(engine, readonly=True) as session:
        assert load_inbox(session, InboxQuery()).groups_total == 0
        assert load_inbox(session, InboxQuery(status="all")).groups_total == 3
        insights = load_insights(session, PROJECT_ROOT / "data" / "nlu")
        assert any(
            p.predicted == "report_noise" and p.actual == "report_pet" for p in insights.pairs
        )

    nlu_dir = tmp_path / "nlu"
    nlu_dir.mkdir()
    exported = export_reviewed(engine, nlu_dir, "tests/data/holdout_*.yml")
    assert sorted(nlu_examples(exported.path)) == [
        ("out_of_scope", "明天会下雨吗"),
        ("report_heating", "5号楼暖气不热！"),
        ("report_pet", "楼下的狗天天晚上叫"),
    ]
    with session_scope(engine) as session:
        assert undo(session, [text_hash("明天会下雨吗")]) == 1
    with session_scope(engine, readonly=True) as session:
        assert load_inbox(session, InboxQuery()).messages_total == 1
    log.dispose()
