"""The retention purge (issue 15, item 4): old conversation log, notices and
photos go, old finished tickets are anonymised; dry run; one transaction per
batch, an interrupted purge is consistent and the next run finishes it.
Runs on SQLite and, with TEST_DATABASE_URL, PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.privacy import records, retention
from bot.store.db import session_scope
from bot.store.models import Notification, Resident, Ticket, TicketEvent
from bot.tickets import service
from tests.fakes import TrackerLog
from tests.helpers import NOW, located, new_ticket

OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=10)
WORDS = "暖气不热 电话13812345678 住2单元501"


@pytest.fixture
def log(tmp_path: Path) -> TrackerLog:
    return TrackerLog(tmp_path / "conversations.db")


def _finished(session, sender: str, message: str, when, photos=("wx-media-1",)) -> str:
    t = new_ticket(
        session,
        message_id=message,
        sender_id=sender,
        description=WORDS,
        original_text=WORDS,
        location=located(session, "和平新村3号楼2单元501"),
        now=when,
    )
    t.photos = list(photos)
    service.cancel_ticket(session, t.number, sender, reason="不用了 电话13812345678", now=when)
    return t.number


@pytest.fixture
def seeded(demo_engine, log: TrackerLog) -> dict[str, str]:
    with session_scope(demo_engine) as session:
        numbers = {
            "old": _finished(session, "oOld", "m1", OLD),
            "recent": _finished(session, "oRecent", "m2", RECENT),
            "open": new_ticket(session, message_id="m3", sender_id="oOpen", now=OLD).number,
        }
        session.add(Resident(sender_id="oOld", channel="wechat", created_at=OLD, updated_at=OLD))
        session.add(Resident(sender_id="oOpen", channel="wechat", created_at=OLD, updated_at=OLD))
        for target, status, at in (
            ("oOld", "deferred", OLD),
            ("oOld", "sent", OLD),
            ("oOld", "pending", OLD),  # still to go out: kept
            ("oRecent", "deferred", RECENT),
        ):
            session.add(
                Notification(
                    channel="wechat",
                    target=target,
                    kind="resolved",
                    payload={"text": "您反映的事已处理"},
                    status=status,
                    created_at=at,
                    updated_at=at,
                )
            )
    log.user("暖气不热 电话13812345678", "report_heating", sender="oOld", at=OLD.timestamp())
    log.user("你好", "greet", sender="oRecent", at=RECENT.timestamp())
    return numbers


def _ticket(engine, number: str) -> Ticket:
    with session_scope(engine, readonly=True) as session:
        ticket = service.get_ticket(session, number)
        _ = list(ticket.events)
        session.expunge_all()
        return ticket


def _log_senders(log: TrackerLog) -> list[str]:
    import sqlite3

    with sqlite3.connect(log.path) as conn:
        return sorted({row[0] for row in conn.execute("SELECT sender_id FROM events")})


def test_dry_run_shows_what_would_go_and_changes_nothing(demo_engine, log, seeded) -> None:
    result = retention.purge(demo_engine, log.url, days=180, now=NOW, dry_run=True)
    assert result.counts == {
        "conversation_log": 2,  # the old message and the action after it
        "review_copies": 0,
        "notices": 2,
        "photos": 1,
        "photo_files": 0,
        "tickets": 1,
        "residents": 0,  # oOld's ticket still links it (until anonymised)
    }
    assert _ticket(demo_engine, seeded["old"]).sender_id == "oOld"
    assert _log_senders(log) == ["oOld", "oRecent"]


def test_purge_removes_old_data_and_anonymises_old_finished_tickets(
    demo_engine, log, seeded
) -> None:
    result = retention.purge(demo_engine, log.url, days=180, now=NOW)
    assert result.counts == {
        "conversation_log": 2,
        "review_copies": 0,
        "notices": 2,
        "photos": 1,
        "photo_files": 0,
        "tickets": 1,
        "residents": 1,
    }
    old = _ticket(demo_engine, seeded["old"])
    assert records.is_anonymised(old.sender_id) and old.message_id is None
    assert old.photos == [] and old.room is None and old.lat is None
    assert "13812345678" not in old.description and "501" not in old.description
    assert (old.category_code, old.status, old.building) == ("HEATING", "cancelled", 3)
    assert old.updated_at == OLD  # forgetting is not news about the matter
    assert all("oOld" not in e.actor for e in old.events)
    assert all("13812345678" not in (e.note or "") for e in old.events)

    recent = _ticket(demo_engine, seeded["recent"])
    assert recent.sender_id == "oRecent" and recent.photos == ["wx-media-1"]
    assert recent.description == WORDS
    assert _ticket(demo_engine, seeded["open"]).sender_id == "oOpen"  # still being handled
    assert _log_senders(log) == ["oRecent"]
    with session_scope(demo_engine, readonly=True) as session:
        notices = session.execute(select(Notification.target, Notification.status)).all()
        residents = session.execute(select(Resident.sender_id)).scalars().all()
    assert sorted(notices) == [("oOld", "pending"), ("oRecent", "deferred")]
    assert residents == ["oOpen"]

    again = retention.purge(demo_engine, log.url, days=180, now=NOW)
    assert set(again.counts.values()) == {0}


def test_an_interrupted_purge_is_consistent_and_the_next_run_finishes_it(
    demo_engine, log, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(demo_engine) as session:
        numbers = [_finished(session, f"o{i}", f"m{i}", OLD) for i in range(5)]
    real = records.anonymise_ticket
    calls = {"n": 0}

    def failing(session, ticket):
        calls["n"] += 1
        real(session, ticket)
        if calls["n"] == 3:  # midway through the second batch
            raise RuntimeError("power cut")

    monkeypatch.setattr(records, "anonymise_ticket", failing)
    with pytest.raises(RuntimeError):
        retention.purge(demo_engine, log.url, days=180, now=NOW, batch=2)
    states = [_ticket(demo_engine, n) for n in numbers]
    # the first batch is done; the failed batch rolled back as a whole
    assert [records.is_anonymised(t.sender_id) for t in states] == [True, True, False, False, False]
    for t in states[2:]:
        assert t.description == WORDS and t.photos == []  # photos went in their own batches
        assert any(e.actor == f"resident:{t.sender_id}" for e in t.events)

    monkeypatch.setattr(records, "anonymise_ticket", real)
    result = retention.purge(demo_engine, log.url, days=180, now=NOW, batch=2)
    assert result.counts["tickets"] == 3
    assert all(records.is_anonymised(_ticket(demo_engine, n).sender_id) for n in numbers)


def test_without_a_conversation_log_the_rest_is_still_purged(demo_engine, tmp_path) -> None:
    with session_scope(demo_engine) as session:
        number = _finished(session, "oOld", "m1", OLD)
    missing = f"sqlite:///{tmp_path / 'no-such-log.db'}"
    result = retention.purge(demo_engine, missing, days=180, now=NOW)
    assert result.counts["conversation_log"] == 0 and result.counts["tickets"] == 1
    assert not (tmp_path / "no-such-log.db").exists()  # never created
    assert records.is_anonymised(_ticket(demo_engine, number).sender_id)


@pytest.mark.parametrize("days", [0, -5])
def test_a_retention_period_under_a_day_is_refused(demo_engine, days: int) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        retention.purge(demo_engine, None, days=days, now=NOW)


def test_the_command_dry_run(demo_engine, log, seeded, monkeypatch, capsys) -> None:
    from bot.cli import main
    from bot.settings import get_settings

    monkeypatch.setenv("TRACKER_DATABASE_URL", log.url)
    get_settings.cache_clear()
    try:
        url = str(demo_engine.url)
        assert main(["--database-url", url, "privacy", "purge", "--dry-run", "--days", "30"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "retention 30 days" in out and "(dry run)" in out
    assert "conversation_log): would remove 2" in out
    assert _ticket(demo_engine, seeded["old"]).sender_id == "oOld"
    assert main(["--database-url", url, "privacy", "purge", "--days", "0"]) == 2


def test_the_event_guard_still_holds_outside_forgetting(demo_engine, seeded) -> None:
    from bot.store.models import UnauditedChange

    with pytest.raises(UnauditedChange), session_scope(demo_engine) as session:
        session.execute(select(TicketEvent)).scalars().first().note = "改写历史"


def test_photo_rows_and_their_files_go_shared_files_stay(demo_engine, tmp_path) -> None:
    from bot.store.models import TicketPhoto
    from bot.tickets.photos import PhotoStore

    store = PhotoStore(tmp_path / "photos")
    old_only, shared = "a" * 64 + ".jpg", "b" * 64 + ".jpg"
    for key in (old_only, shared):
        store.path(key).parent.mkdir(parents=True, exist_ok=True)
        store.path(key).write_bytes(b"jpeg")
    with session_scope(demo_engine) as session:
        old = service.get_ticket(session, _finished(session, "oOld", "m1", OLD))
        recent = service.get_ticket(session, _finished(session, "oRecent", "m2", RECENT))
        for ticket, key in ((old, old_only), (old, shared), (recent, shared)):
            session.add(
                TicketPhoto(
                    ticket_id=ticket.id,
                    storage_key=key,
                    content_type="image/jpeg",
                    size_bytes=4,
                    sha256=key[:64],
                    source="resident",
                    actor=f"resident:{ticket.sender_id}",
                )
            )
    dry = retention.purge(demo_engine, None, days=180, now=NOW, dry_run=True, photo_store=store)
    assert dry.counts["photo_files"] == 2 and store.path(old_only).exists()
    result = retention.purge(demo_engine, None, days=180, now=NOW, batch=1, photo_store=store)
    assert result.counts["photo_files"] == 2
    assert not store.path(old_only).exists()
    assert store.path(shared).exists()  # the recent ticket still shows it
    with session_scope(demo_engine, readonly=True) as session:
        rows = session.execute(select(TicketPhoto.actor)).scalars().all()
    assert rows == ["resident:oRecent"]
