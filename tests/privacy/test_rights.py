"""A resident's own rights (issue 15, item 5), in bot/: what is kept, and
deleting it for one OpenID and nobody else. SQLite and, with
TEST_DATABASE_URL, PostgreSQL (the conversation log in the same database,
as on a database server)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from bot.conversation_log import RASA_EVENTS_DDL
from bot.privacy import records, rights
from bot.store.db import session_scope
from bot.store.models import Notification, Resident, ReviewMessage, Ticket, TicketEvent
from bot.tickets import service
from tests.helpers import NOW, located, new_ticket

ME = "oResidentMe0001"
# Others whose OpenIDs look like mine: a deletion never touches them.
OTHERS = ("oResidentMe00011", "oResidentMe000", "oresidentme0001", "oResident%")


@pytest.fixture
def log(demo_engine):
    with demo_engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS events"))
        for ddl in RASA_EVENTS_DDL:
            conn.execute(text(ddl))
    yield demo_engine
    with demo_engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS events"))


def _say(log, sender: str, words: str, event_id: int) -> None:
    with log.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (id, sender_id, type_name, timestamp, data) "
                "VALUES (:id, :sender, 'user', :ts, :data)"
            ),
            {
                "id": event_id,
                "sender": sender,
                "ts": NOW.timestamp(),
                "data": json.dumps({"event": "user", "text": words}, ensure_ascii=False),
            },
        )


def _seed(engine, log, sender: str, n: int) -> dict[str, str]:
    with session_scope(engine) as session:
        place = located(session, "和平新村3号楼2单元501")
        open_ = new_ticket(session, f"m{n}a", sender, location=place, description="电话13812345678")
        done = new_ticket(session, f"m{n}b", sender, category="SUBSIDY", location=place)
        service.cancel_ticket(session, done.number, sender, reason="不办了", now=NOW)
        session.add(Resident(sender_id=sender, channel="wechat", building=3, unit="2", room="501"))
        session.add(
            Notification(
                channel="wechat", target=sender, kind="resolved", payload={}, status="deferred"
            )
        )
        session.add(
            ReviewMessage(
                event_id=n * 100,
                sender_id=sender,
                text="我家暖气不热",
                norm_hash=f"hash{n}",
                confidence=0.9,
                margin=0.5,
                timestamp=NOW,
            )
        )
        numbers = {"open": open_.number, "done": done.number}
    _say(log, sender, "俺家暖气不热 电话13812345678", n * 100)
    _say(log, sender, "删除我的信息", n * 100 + 1)
    return numbers


def _found(engine, sender: str) -> dict[str, int]:
    """Everything stored under `sender`, kind by kind."""
    with session_scope(engine, readonly=True) as session:
        counts = {
            "tickets": session.execute(
                select(func.count()).where(Ticket.sender_id == sender)
            ).scalar(),
            "events": session.execute(
                select(func.count()).where(TicketEvent.actor.in_((sender, f"resident:{sender}")))
            ).scalar(),
            "residents": session.execute(
                select(func.count()).where(Resident.sender_id == sender)
            ).scalar(),
            "notices": session.execute(
                select(func.count()).where(Notification.target == sender)
            ).scalar(),
            "review": session.execute(
                select(func.count()).where(ReviewMessage.sender_id == sender)
            ).scalar(),
        }
    with engine.connect() as conn:
        counts["log"] = conn.execute(
            text("SELECT COUNT(*) FROM events WHERE sender_id = :s"), {"s": sender}
        ).scalar()
    return counts


NOTHING = {"tickets": 0, "events": 0, "residents": 0, "notices": 0, "review": 0, "log": 0}


def test_what_is_kept(demo_engine, log) -> None:
    numbers = _seed(demo_engine, log, ME, 1)
    with session_scope(demo_engine, readonly=True) as session:
        kept = rights.what_is_kept(session, log, ME)
        nobody = rights.what_is_kept(session, log, "oNobody")
    assert kept.open_tickets == (rights.OpenTicket(numbers["open"], "供暖供气"),)
    assert (kept.other_tickets, kept.messages, kept.notices) == (1, 2, 1)
    assert nobody.nothing


def test_erase_withdrawing_open_tickets_leaves_nothing_under_the_openid(demo_engine, log) -> None:
    mine = _seed(demo_engine, log, ME, 1)
    theirs = {other: _seed(demo_engine, log, other, i + 2) for i, other in enumerate(OTHERS)}
    before = {other: _found(demo_engine, other) for other in OTHERS}

    with session_scope(demo_engine) as session:
        erased = rights.erase(session, ME, withdraw_open=True, now=NOW)
    assert rights.forget_log(log, ME) == 2
    assert erased.withdrawn == (mine["open"],) and erased.kept_open == ()
    assert (erased.anonymised, erased.notices, erased.review_copies) == (2, 1, 1)
    assert _found(demo_engine, ME) == NOTHING

    # the tickets keep their record without the resident
    with session_scope(demo_engine, readonly=True) as session:
        for number in mine.values():
            ticket = service.get_ticket(session, number)
            assert records.is_anonymised(ticket.sender_id) and ticket.status == "cancelled"
            assert "13812345678" not in ticket.description and ticket.room is None
        # nobody else's data was touched
        for other, numbers in theirs.items():
            assert service.get_ticket(session, numbers["open"]).status == "open"
            assert service.get_ticket(session, numbers["open"]).sender_id == other
    assert {other: _found(demo_engine, other) for other in OTHERS} == before
    with session_scope(demo_engine, readonly=True) as session:
        assert rights.what_is_kept(session, log, ME).nothing


def test_erase_keeping_open_tickets_keeps_only_them(demo_engine, log) -> None:
    mine = _seed(demo_engine, log, ME, 1)
    with session_scope(demo_engine) as session:
        erased = rights.erase(session, ME, withdraw_open=False, now=NOW)
    rights.forget_log(log, ME)
    assert erased.kept_open == (mine["open"],) and erased.withdrawn == ()
    found = _found(demo_engine, ME)
    assert found["tickets"] == 1 and found["log"] == 0 and found["residents"] == 0
    with session_scope(demo_engine, readonly=True) as session:
        assert service.get_ticket(session, mine["open"]).status == "open"
        assert records.is_anonymised(service.get_ticket(session, mine["done"]).sender_id)


@pytest.mark.parametrize("sender", ["", "   ", "anonymised:12"])
def test_no_resident_no_erasure(demo_engine, log, sender: str) -> None:
    _seed(demo_engine, log, ME, 1)
    with pytest.raises(ValueError), session_scope(demo_engine) as session:
        rights.erase(session, sender, withdraw_open=True)
    with pytest.raises(ValueError):
        rights.forget_log(log, sender)
    assert _found(demo_engine, ME)["tickets"] == 2
