"""满意 / 不满意 after a resolution: the yes / no actions rate the resolved ticket."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from actions.tickets import PENDING_CANCEL, ActionAnswerAffirm, ActionAnswerDeny
from bot import frontdesk
from bot.store.db import session_scope
from bot.store.models import Ticket, utcnow
from bot.tickets import service
from tests.actions.conftest import DOMAIN, make_tracker, responses
from tests.notify.conftest import GRID_KEY, RESIDENT, notifications, open_report


def resolved_ticket(engine: Engine, message_id: str = "m1", **kwargs) -> str:
    number = open_report(engine, message_id)
    with session_scope(engine) as session:
        service.accept(session, number, actor="worker:1")
        service.resolve(session, number, actor="worker:1", note="已更换阀门", **kwargs)
    return number


def ticket(engine: Engine, number: str) -> Ticket:
    with Session(engine, future=True, expire_on_commit=False) as session:
        t = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        _ = t.events  # loaded before the session closes
        return t


def run(action, text: str, intent: str, **kwargs) -> tuple[CollectingDispatcher, list]:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text, intent=intent, sender_id=RESIDENT, **kwargs)
    return dispatcher, action.run(dispatcher, tracker, DOMAIN)


def test_satisfied_closes_the_ticket(engine: Engine) -> None:
    number = resolved_ticket(engine)
    dispatcher, events = run(ActionAnswerAffirm(), "满意", "affirm")
    assert responses(dispatcher) == ["utter_rating_thanks"]
    assert dispatcher.messages[0]["ticket_number"] == number
    t = ticket(engine, number)
    assert t.status == "closed"
    closed = t.events[-1]
    assert closed.type == "closed" and closed.note == "居民满意"
    assert closed.data["rating"] == "satisfied" and closed.actor == f"resident:{RESIDENT}"
    # Rated once: another yes means nothing more.
    dispatcher, _ = run(ActionAnswerAffirm(), "挺好的", "affirm")
    assert responses(dispatcher) == ["utter_anything_else"]
    assert notifications(engine, kind="reopened") == []


def test_unsatisfied_reopens_and_tells_the_worker(engine: Engine) -> None:
    number = resolved_ticket(engine)
    dispatcher, _ = run(ActionAnswerDeny(), "不满意 还是不热", "deny")
    assert responses(dispatcher) == ["utter_rating_reopened"]
    t = ticket(engine, number)
    assert t.status == "open" and t.due_at > utcnow()
    reopened = t.events[-1]
    assert reopened.type == "reopened" and reopened.data["rating"] == "unsatisfied"
    assert reopened.note == "居民不满意：不满意 还是不热"
    [notice] = notifications(engine, kind="reopened")
    assert notice.channel == "wecom" and notice.target == GRID_KEY
    content = notice.payload["markdown"]["content"]
    assert "居民不满意，工单已重新打开" in content and "<@wangfang>" in content


def test_bare_verdict_is_not_repeated_as_reason(engine: Engine) -> None:
    number = resolved_ticket(engine)
    run(ActionAnswerDeny(), "不满意", "deny")
    assert ticket(engine, number).events[-1].note == "居民不满意"


def test_the_latest_resolved_ticket_is_rated(engine: Engine) -> None:
    older = resolved_ticket(engine, "m1", now=utcnow() - timedelta(days=2))
    newer = resolved_ticket(engine, "m2")
    pending = frontdesk.pending_rating(RESIDENT)
    assert pending is not None and pending.ticket_number == newer
    run(ActionAnswerAffirm(), "满意", "affirm")
    assert ticket(engine, newer).status == "closed"
    assert ticket(engine, older).status == "resolved"
    assert frontdesk.pending_rating(RESIDENT).ticket_number == older


def test_a_resolution_long_ago_is_not_rated(engine: Engine) -> None:
    number = resolved_ticket(engine, now=utcnow() - timedelta(days=8))
    dispatcher, _ = run(ActionAnswerDeny(), "不满意", "deny")
    assert responses(dispatcher) == ["utter_anything_else"]
    assert ticket(engine, number).status == "resolved"


def test_nothing_resolved_keeps_the_old_answers(engine: Engine) -> None:
    open_report(engine)
    dispatcher, _ = run(ActionAnswerAffirm(), "好的", "affirm")
    assert responses(dispatcher) == ["utter_anything_else"]
    dispatcher, _ = run(ActionAnswerDeny(), "不用", "deny")
    assert responses(dispatcher) == ["utter_anything_else"]


def test_a_pending_question_comes_first(engine: Engine) -> None:
    number = resolved_ticket(engine, "m1")
    other = open_report(engine, "m2")
    dispatcher, _ = run(
        ActionAnswerDeny(), "不", "deny", slots={"pending_question": PENDING_CANCEL + other}
    )
    assert responses(dispatcher) == ["utter_cancel_kept"]
    assert ticket(engine, number).status == "resolved"


def test_rating_responses_are_in_the_domain() -> None:
    for name in ("utter_rating_thanks", "utter_rating_reopened"):
        assert DOMAIN["responses"][name][0]["text"]
