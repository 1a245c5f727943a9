"""Ticket numbers, exactly-once opening, the resident's view and handling."""

from __future__ import annotations

import threading
from datetime import timedelta, timezone

import pytest
from sqlalchemy import func, inspect, select

from bot.store.db import session_scope
from bot.store.models import Ticket, TicketEvent
from bot.tickets import service
from bot.tickets.service import (
    TicketNotFound,
    accept,
    add_note,
    allocate_ticket_number,
    cancel_ticket,
    open_tickets_for,
    reopen,
    resolve,
    transfer,
)
from bot.tickets.state import IllegalTransition
from tests.helpers import NOW, located, new_ticket


def _count(session, model) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


# -- numbers -------------------------------------------------------------------


def test_numbers_are_sequential_per_local_day(session) -> None:
    numbers = [new_ticket(session, message_id=f"m{i}").number for i in range(3)]
    assert numbers == ["20261127-0001", "20261127-0002", "20261127-0003"]
    # 16:30 UTC is already the next day in Jinan (UTC+8).
    late = NOW.replace(hour=16, minute=30)
    assert new_ticket(session, message_id="late", now=late).number == "20261128-0001"
    assert new_ticket(session, message_id="m9").number == "20261127-0004"
    session.commit()


def test_rolled_back_ticket_gives_its_number_back(session) -> None:
    new_ticket(session, message_id="a")
    session.commit()
    new_ticket(session, message_id="b")
    session.rollback()
    assert new_ticket(session, message_id="c").number == "20261127-0002"


def test_concurrent_number_allocation_on_a_shared_file(engine) -> None:
    threads, per_thread = 8, 10
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                with session_scope(engine) as s:
                    number = allocate_ticket_number(s, NOW)
                with lock:
                    results.append(number)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    expected = [f"20261127-{i:04d}" for i in range(1, threads * per_thread + 1)]
    assert sorted(results) == expected


# -- exactly once -------------------------------------------------------------


def test_same_message_twice_opens_one_ticket(session) -> None:
    first = new_ticket(session, message_id="msg-42")
    session.commit()
    again = new_ticket(session, message_id="msg-42", description="重复投递")
    session.commit()
    assert again.id == first.id and again.number == first.number
    assert _count(session, Ticket) == 1
    created = session.execute(
        select(func.count()).select_from(TicketEvent).where(TicketEvent.type == "created")
    ).scalar_one()
    assert created == 1
    # Another sender may reuse the same message id; so may the same sender
    # without a message id (web form).
    new_ticket(session, message_id="msg-42", sender_id="someone-else")
    new_ticket(session, message_id=None)
    new_ticket(session, message_id=None)
    session.commit()
    assert _count(session, Ticket) == 4


def test_concurrent_duplicates_open_one_ticket(engine) -> None:
    threads = 6
    numbers: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work() -> None:
        try:
            start.wait()
            with session_scope(engine) as s:
                numbers.append(new_ticket(s, message_id="dup").number)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert len(set(numbers)) == 1 and len(numbers) == threads
    with session_scope(engine) as s:
        assert _count(s, Ticket) == 1


def test_concurrent_confirmations_of_one_report_open_one_ticket(engine) -> None:
    """Two turns of the same report at once (each its own message: a 是 and its
    resend after a lost turn): the database's constraint on the report decides."""
    threads = 6
    numbers: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            with session_scope(engine) as s:
                ticket = new_ticket(s, message_id=f"yes-{n}", report_key="report:start")
                numbers.append(ticket.number)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert len(set(numbers)) == 1 and len(numbers) == threads
    with session_scope(engine) as s:
        assert _count(s, Ticket) == 1


def test_race_loser_reads_the_winners_ticket(engine, monkeypatch) -> None:
    """The IntegrityError path: the pre-check misses, the insert collides."""
    with session_scope(engine) as s:
        winner = new_ticket(s, message_id="race")
    real = service._by_message
    calls = {"n": 0}

    def blind_first_check(session, sender_id, message_id):
        calls["n"] += 1
        return None if calls["n"] == 1 else real(session, sender_id, message_id)

    monkeypatch.setattr(service, "_by_message", blind_first_check)
    with session_scope(engine) as s:
        loser = new_ticket(s, message_id="race")
        assert loser.number == winner.number
        # The collided savepoint did not consume a number.
        assert new_ticket(s, message_id="next").number == "20261127-0002"


# -- content ---------------------------------------------------------------------


def test_hostile_text_is_stored_as_plain_text(session) -> None:
    text = "'; DROP TABLE tickets;--"
    ticket = new_ticket(session, description=text, original_text=text, photos=["media-1"])
    session.commit()
    session.expire_all()
    stored = session.get(Ticket, ticket.id)
    assert stored.description == text and stored.original_text == text
    assert stored.photos == ["media-1"]
    session.close()
    assert inspect(session.get_bind()).has_table("tickets")


def test_new_ticket_fields(session) -> None:
    ticket = new_ticket(session, category="NOISE")
    session.commit()
    session.expire_all()
    t = session.get(Ticket, ticket.id)
    assert t.status == "open" and t.kind == "complaint"
    assert t.created_at == NOW and t.created_at.tzinfo is not None
    assert t.due_at == NOW + timedelta(hours=48)  # NOISE sla_hours
    assert t.due_at.tzinfo == timezone.utc
    assert t.routing_reason  # even unrouted tickets say why
    assert [e.type for e in t.events] == ["created"]  # nothing known: not assigned


def test_unknown_category_and_overlong_ids_are_refused(session) -> None:
    with pytest.raises(ValueError, match="category"):
        new_ticket(session, category="WEATHER")
    with pytest.raises(ValueError, match="sender_id"):
        new_ticket(session, sender_id="x" * 129)


def test_naive_datetimes_are_refused(session) -> None:
    with pytest.raises(ValueError, match="naive"):
        new_ticket(session, now=NOW.replace(tzinfo=None))
        session.flush()


# -- resident's view and handling ---------------------------------------------------


def test_open_tickets_for_lists_active_tickets_with_latest_note(session) -> None:
    a = new_ticket(session, message_id="a")
    b = new_ticket(session, message_id="b", now=NOW + timedelta(minutes=5))
    c = new_ticket(session, message_id="c", now=NOW + timedelta(minutes=10))
    new_ticket(session, message_id="x", sender_id="other")
    accept(
        session, a.number, actor="worker:1", note="已受理，明天上门", now=NOW + timedelta(hours=1)
    )
    add_note(session, a, "worker:1", "已联系供热公司", now=NOW + timedelta(hours=2))
    cancel_ticket(session, c.number, "wx-user-1", reason="已经好了")
    session.commit()

    summaries = open_tickets_for(session, "wx-user-1")
    assert [s.number for s in summaries] == [b.number, a.number]
    assert summaries[1].status == "accepted"
    assert summaries[1].latest_note == "已联系供热公司"
    assert summaries[0].latest_note is None
    assert len(open_tickets_for(session, "wx-user-1", limit=1)) == 1


def test_residents_cannot_cancel_others_tickets(session) -> None:
    ticket = new_ticket(session)
    session.commit()
    with pytest.raises(TicketNotFound):
        cancel_ticket(session, ticket.number, "intruder")
    with pytest.raises(TicketNotFound):
        cancel_ticket(session, "20991231-9999", "wx-user-1")
    cancel_ticket(session, ticket.number, "wx-user-1", "不需要了")
    with pytest.raises(IllegalTransition):
        cancel_ticket(session, ticket.number, "wx-user-1")


def test_resolve_reopen_gives_a_fresh_window(session) -> None:
    ticket = new_ticket(session)
    resolve(session, ticket, "worker:1", "已修好", now=NOW + timedelta(hours=3))
    later = NOW + timedelta(days=3)
    reopen(session, ticket.number, "resident:wx-user-1", "还是不热", now=later)
    session.commit()
    assert ticket.status == "open"
    assert ticket.due_at == later + timedelta(hours=24)
    assert [e.type for e in ticket.events] == ["created", "resolved", "reopened"]


def test_transfer_to_another_grid(demo_session) -> None:
    s = demo_session
    ticket = new_ticket(s, location=located(s, "和平新村3号楼"))
    accept(s, ticket, "worker:1")
    transfer(s, ticket, "HPXC-02", "worker:1", reason="其实是7号楼", now=NOW + timedelta(hours=1))
    s.commit()
    assert ticket.status == "open" and ticket.level == "grid"
    assert ticket.grid.code == "HPXC-02" and ticket.assignee.name == "李强"
    assert "HPXC-02" in ticket.routing_reason
    assert ticket.events[-1].type == "transferred"
    assert ticket.events[-1].data["from_grid"] == "HPXC-01"
    with pytest.raises(ValueError):
        transfer(s, ticket, "NOPE-99", "worker:1")


def test_the_same_report_confirmed_again_opens_one_ticket(session) -> None:
    """The turn that opened it was lost (crash, database down): the conversation was
    not saved, asks again, and the resident's next "是" is another message."""
    first = new_ticket(session, message_id="msg-yes-1", report_key="report:msg-start")
    session.commit()
    again = new_ticket(session, message_id="msg-yes-2", report_key="report:msg-start")
    session.commit()
    assert again.id == first.id
    # a new report (another start message) of the same sender is a new ticket
    other = new_ticket(session, message_id="msg-yes-3", report_key="report:msg-start-2")
    session.commit()
    assert other.id != first.id and _count(session, Ticket) == 2
