"""满意 / 不满意 after a resolution: the answer action rates the resolved ticket."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from actions.answers import ActionAnswerQuestion
from bot import frontdesk
from bot.dialogue.questions import cancel_question
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
    dispatcher, events = run(ActionAnswerQuestion(), "满意", "affirm")
    assert responses(dispatcher) == ["utter_rating_thanks"]
    assert dispatcher.messages[0]["ticket_number"] == number
    t = ticket(engine, number)
    assert t.status == "closed"
    closed = t.events[-1]
    assert closed.type == "closed" and closed.note == "居民满意"
    assert closed.data["rating"] == "satisfied" and closed.actor == f"resident:{RESIDENT}"
    # Rated once: another yes means nothing more.
    dispatcher, _ = run(ActionAnswerQuestion(), "挺好的", "affirm")
    assert responses(dispatcher) == ["utter_anything_else"]
    assert notifications(engine, kind="reopened") == []


def test_unsatisfied_reopens_and_tells_the_worker(engine: Engine) -> None:
    number = resolved_ticket(engine)
    dispatcher, _ = run(ActionAnswerQuestion(), "不满意 还是不热", "deny")
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
    run(ActionAnswerQuestion(), "不满意", "deny")
    assert ticket(engine, number).events[-1].note == "居民不满意"


def test_the_latest_resolved_ticket_is_rated(engine: Engine) -> None:
    older = resolved_ticket(engine, "m1", now=utcnow() - timedelta(days=2))
    newer = resolved_ticket(engine, "m2")
    pending = frontdesk.pending_rating(RESIDENT)
    assert pending is not None and pending.ticket_number == newer
    run(ActionAnswerQuestion(), "满意", "affirm")
    assert ticket(engine, newer).status == "closed"
    assert ticket(engine, older).status == "resolved"
    assert frontdesk.pending_rating(RESIDENT).ticket_number == older


def test_a_resolution_long_ago_is_not_rated(engine: Engine) -> None:
    number = resolved_ticket(engine, now=utcnow() - timedelta(days=8))
    dispatcher, _ = run(ActionAnswerQuestion(), "不满意", "deny")
    assert responses(dispatcher) == ["utter_anything_else"]
    assert ticket(engine, number).status == "resolved"


def test_nothing_resolved_keeps_the_old_answers(engine: Engine) -> None:
    open_report(engine)
    dispatcher, _ = run(ActionAnswerQuestion(), "好的", "affirm")
    assert responses(dispatcher) == ["utter_anything_else"]
    dispatcher, _ = run(ActionAnswerQuestion(), "不用", "deny")
    assert responses(dispatcher) == ["utter_anything_else"]


def test_a_pending_question_comes_first(engine: Engine) -> None:
    number = resolved_ticket(engine, "m1")
    other = open_report(engine, "m2")
    dispatcher, _ = run(
        ActionAnswerQuestion(),
        "不",
        "deny",
        slots={"pending_question": cancel_question(other, "供暖供气").to_slot()},
    )
    assert responses(dispatcher) == ["utter_cancel_kept"]
    assert ticket(engine, number).status == "resolved"


def test_dialect_and_gestures_rate_whatever_the_classifier_thinks(engine: Engine) -> None:
    number = resolved_ticket(engine)
    dispatcher, _ = run(ActionAnswerQuestion(), "👌", "nlu_fallback")
    assert responses(dispatcher) == ["utter_rating_thanks"]
    assert ticket(engine, number).status == "closed"
    other = resolved_ticket(engine, "m2")
    dispatcher, _ = run(ActionAnswerQuestion(), "不咋地 没修好", "report_heating")
    assert responses(dispatcher) == ["utter_rating_reopened"]
    assert ticket(engine, other).status == "open"


def test_an_unclear_reply_to_a_pending_rating_asks_the_rating_question(engine: Engine) -> None:
    number = resolved_ticket(engine)
    dispatcher, events = run(ActionAnswerQuestion(), "嗯 这个吧 咋说呢", "nlu_fallback")
    assert responses(dispatcher) == ["utter_answer_yes_or_no", "utter_ask_rating"]
    assert dispatcher.messages[1]["ticket_number"] == number
    [question] = [e["value"] for e in events if e.get("name") == "pending_question"]
    assert question["kind"] == "rating" and question["subject"] == number
    assert ticket(engine, number).status == "resolved"
    # the next reply is read as the rating
    dispatcher, _ = run(
        ActionAnswerQuestion(), "还行", "greet", slots={"pending_question": question}
    )
    assert responses(dispatcher) == ["utter_rating_thanks"]
    assert ticket(engine, number).status == "closed"


def test_rating_responses_are_in_the_domain() -> None:
    for name in ("utter_rating_thanks", "utter_rating_reopened", "utter_ask_rating"):
        assert DOMAIN["responses"][name][0]["text"]
