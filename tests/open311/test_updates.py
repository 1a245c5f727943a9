"""bot.open311.updates on SQLite and PostgreSQL: one update applied once, even
when two posts of it race (the unique constraint inside a savepoint)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.apikeys import create_key
from bot.open311 import updates
from bot.open311.parsing import RequestQuery
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.store.models import Open311Update, Ticket, TicketEvent
from bot.tickets import service


@pytest.fixture
def ticket_and_key(demo_engine: Engine) -> tuple[str, str]:
    with session_scope(demo_engine) as session:
        ticket = service.open_ticket(
            session,
            sender_id="wx-1",
            channel="wechat",
            message_id="m-1",
            category_code="FACILITY",
            description="路灯坏了",
            location=get_locator(session).locate_text("和平新村3号楼"),
        )
        key = create_key(session, "城管系统", created_by="tests").token
        return ticket.number, key


def fields(key: str, number: str, update_id: str, status: str) -> dict[str, str]:
    return {
        "api_key": key,
        "service_request_id": number,
        "update_id": update_id,
        "status": status,
        "description": f"{status}：已处理",
    }


def counts(engine: Engine) -> tuple[int, int, str]:
    with session_scope(engine, readonly=True) as session:
        events = session.execute(select(func.count(TicketEvent.id))).scalar_one()
        rows = session.execute(select(func.count(Open311Update.id))).scalar_one()
        status = session.execute(select(Ticket.status)).scalar_one()
        return events, rows, status


def test_replay_and_race_apply_the_update_once(
    demo_engine: Engine, ticket_and_key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    number, key = ticket_and_key
    with session_scope(demo_engine) as session:
        first = updates.post_update(session, fields(key, number, "u-1", "IN_PROGRESS"))
    assert first.status == 200
    after_first = counts(demo_engine)
    assert after_first[1:] == (1, "accepted")

    with session_scope(demo_engine) as session:
        assert updates.post_update(session, fields(key, number, "u-1", "FIXED")) == first
    assert counts(demo_engine) == after_first

    # A second post that looked before the first had committed: the insert
    # fails on the constraint, the savepoint is rolled back and the stored
    # update answered; the transaction stays usable (PostgreSQL would abort it
    # without the savepoint).
    real = updates._stored
    calls: list[str] = []

    def not_yet(session: Any, source: str, update_id: str) -> Open311Update | None:
        calls.append(update_id)
        return None if len(calls) == 1 else real(session, source, update_id)

    monkeypatch.setattr(updates, "_stored", not_yet)
    with session_scope(demo_engine) as session:
        assert updates.post_update(session, fields(key, number, "u-1", "FIXED")) == first
    assert calls == ["u-1", "u-1"]
    assert counts(demo_engine) == after_first


def test_find_updates_reads_status_after_each_event(
    demo_engine: Engine, ticket_and_key: tuple[str, str]
) -> None:
    number, key = ticket_and_key
    with session_scope(demo_engine) as session:
        service.add_note(session, number, actor="worker:1", note="先看看")
        updates.post_update(session, fields(key, number, "u-1", "in_progress"))
        service.add_note(session, number, actor="worker:1", note="")  # says nothing
        updates.post_update(session, fields(key, number, "u-2", "fixed"))
    with session_scope(demo_engine, readonly=True) as session:
        found = updates.find_updates(session, RequestQuery())
    assert [(u["status"], u["description"]) for u in found] == [
        ("open", "先看看"),
        ("in_progress", "in_progress：已处理"),
        ("fixed", "fixed：已处理"),
    ]
    assert [u["service_request_id"] for u in found] == [number] * 3
    with session_scope(demo_engine, readonly=True) as session:
        page = updates.find_updates(session, RequestQuery(page=2, page_size=2))
    assert [u["update_id"] for u in page] == [found[2]["update_id"]]
