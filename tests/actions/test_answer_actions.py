"""Yes/no answers in context: the answer action, the cancel question and the
report form's two yes/no questions, run against trackers."""

from __future__ import annotations

import asyncio

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import ActionAnswerQuestion, ActionSessionStart
from actions.report import ActionAskAddress, ValidateReportForm
from actions.tickets import ActionProposeCancel
from bot import frontdesk
from bot.dialogue.questions import cancel_question, retry_submit_question
from tests.actions.conftest import DOMAIN, make_tracker, responses, slot_events
from tests.actions.test_report_actions import confirmed_slots, tickets

RESIDENT = "oResidentAnswers"


def run(action, tracker):
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, DOMAIN)
    return dispatcher, events


def form(tracker):
    """The form's validation as Rasa runs it: extraction, then validation."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateReportForm().run(dispatcher, tracker, DOMAIN))
    return dispatcher, slot_events(events)


def open_ticket(message_id: str = "m-open") -> str:
    receipt = frontdesk.submit_report(
        sender_id=RESIDENT,
        channel="wechat",
        message_id=message_id,
        category_code="HEATING",
        description="暖气不热",
        original_text="暖气不热",
        located=frontdesk.locate_text("和平新村3号楼2单元501"),
        photos=[],
    )
    return receipt.ticket_number


def status(number: str) -> str:
    [line] = [t for t in frontdesk.open_tickets(RESIDENT) if t.ticket_number == number] or [None]
    return line.status if line else "gone"


# --- withdrawing a report --------------------------------------------------------------


def test_the_cancel_question_is_remembered_with_what_it_asked(demo_database):
    number = open_ticket()
    dispatcher, events = run(
        ActionProposeCancel(), make_tracker("暖气好了 撤了吧", "cancel_ticket", sender_id=RESIDENT)
    )
    assert responses(dispatcher) == ["utter_confirm_cancel"]
    assert dispatcher.messages[0]["ticket_number"] == number
    assert slot_events(events)["pending_question"] == cancel_question(number, "供暖供气").to_slot()


@pytest.mark.parametrize(
    ("text", "classified_as"),
    [("中", "out_of_scope"), ("管", "greet"), ("👌", "nlu_fallback"), ("行吧", "goodbye")],
)
def test_dialect_yes_withdraws_whatever_the_classifier_thinks(demo_database, text, classified_as):
    number = open_ticket()
    slots = {"pending_question": cancel_question(number, "供暖供气").to_slot()}
    dispatcher, events = run(
        ActionAnswerQuestion(), make_tracker(text, classified_as, slots, sender_id=RESIDENT)
    )
    assert responses(dispatcher) == ["utter_ticket_cancelled"]
    assert status(number) == "gone"  # no longer in hand
    assert slot_events(events) == {"pending_question": None}


@pytest.mark.parametrize(
    ("text", "classified_as"),
    [("不对", "affirm"), ("算了", "cancel_ticket"), ("不用", "thank"), ("错了", "affirm")],
)
def test_a_no_keeps_the_ticket_whatever_the_classifier_thinks(demo_database, text, classified_as):
    number = open_ticket()
    slots = {"pending_question": cancel_question(number, "供暖供气").to_slot()}
    dispatcher, _ = run(
        ActionAnswerQuestion(), make_tracker(text, classified_as, slots, sender_id=RESIDENT)
    )
    assert responses(dispatcher) == ["utter_cancel_kept"]
    assert status(number) != "gone"


def test_neither_yes_nor_no_asks_again_then_lets_go_never_acting(demo_database):
    number = open_ticket()
    slots = {"pending_question": cancel_question(number, "供暖供气").to_slot()}
    tracker = make_tracker("楼道灯也坏了", "report_facility", slots, sender_id=RESIDENT)
    dispatcher, events = run(ActionAnswerQuestion(), tracker)
    assert responses(dispatcher) == ["utter_answer_yes_or_no", "utter_confirm_cancel"]
    asked_again = slot_events(events)["pending_question"]
    assert asked_again["times_asked"] == 2
    dispatcher, events = run(
        ActionAnswerQuestion(),
        make_tracker("你是机器人吗", "bot_challenge", {"pending_question": asked_again}, RESIDENT),
    )
    assert responses(dispatcher) == ["utter_question_dropped"]
    assert slot_events(events) == {"pending_question": None}
    assert status(number) != "gone" and len(tickets(demo_database)) == 1


def test_a_yes_to_nothing_in_particular(demo_database):
    dispatcher, events = run(ActionAnswerQuestion(), make_tracker("好的", "affirm"))
    assert responses(dispatcher) == ["utter_anything_else"]


def _turn_that_opened(number: str) -> list[dict]:
    return [
        {"event": "user", "text": "是", "message_id": "m-yes"},
        {"event": "action", "name": "action_submit_report"},
        {
            "event": "bot",
            "text": f"已为您登记，编号 {number}。",
            "metadata": {"utter_action": "utter_ticket_opened_grid"},
        },
        {
            "event": "bot",
            "text": "另外，这栋楼已有1位邻居反映了同样的问题。",
            "metadata": {"utter_action": "utter_neighbours_reported_too"},
        },
        {"event": "action", "name": "action_listen"},
    ]


def test_a_yes_right_after_a_ticket_was_opened_gets_its_confirmation_again(demo_database):
    """The resident never read the confirmation (the server died after saving the
    turn) and says 是 again: they read the ticket number, no second report starts."""
    tracker = make_tracker("是", "affirm", events=_turn_that_opened("20261207-0042"))
    dispatcher, events = run(ActionAnswerQuestion(), tracker)
    assert [m.get("text") for m in dispatcher.messages] == [
        "已为您登记，编号 20261207-0042。",
        "另外，这栋楼已有1位邻居反映了同样的问题。",
    ]
    assert events == [] and tickets(demo_database) == []
    # the repeat is that confirmation again (for the next yes, should it be lost too)
    assert responses(dispatcher) == [None, None]
    assert [m.get("utter_action") for m in dispatcher.messages] == [
        "utter_ticket_opened_grid",
        "utter_neighbours_reported_too",
    ]


def test_a_no_or_a_later_yes_after_a_ticket_is_not_a_confirmation(demo_database):
    opened = _turn_that_opened("20261207-0042")
    dispatcher, _ = run(ActionAnswerQuestion(), make_tracker("不是", "deny", events=opened))
    assert responses(dispatcher) == ["utter_anything_else"]
    later = [*opened, {"event": "user", "text": "谢谢"}, {"event": "bot", "text": "不客气"}]
    dispatcher, _ = run(ActionAnswerQuestion(), make_tracker("是", "affirm", events=later))
    assert responses(dispatcher) == ["utter_anything_else"]


def test_submit_again_after_a_failure_reads_dialect_yes(demo_database):
    slots = confirmed_slots(pending_question=retry_submit_question().to_slot())
    dispatcher, _ = run(ActionAnswerQuestion(), make_tracker("中", "out_of_scope", slots))
    assert responses(dispatcher) == ["utter_ticket_opened_grid"]
    assert len(tickets(demo_database)) == 1


def test_a_new_session_forgets_the_question_but_keeps_the_rest(demo_database):
    slots = {
        "pending_question": cancel_question("20261127-0001", "供暖供气").to_slot(),
        "known_address": "和平新村社区3号楼",
    }
    _, events = run(ActionSessionStart(), make_tracker("暖气不热", "report_heating", slots))
    assert events[0]["event"] == "session_started"
    assert events[-1] == {"event": "action", "name": "action_listen", **events[-1]}
    carried = slot_events(events)
    assert carried["known_address"] == "和平新村社区3号楼"
    assert "pending_question" not in carried


# --- the report form: the summary and "还是…吗？" -----------------------------------------


@pytest.mark.parametrize(
    ("text", "classified_as", "confirmed"),
    [
        ("管", "nlu_fallback", True),
        ("对对对", "deny", True),
        ("ok", "out_of_scope", True),
        ("没错 提交吧", "thank", True),
        ("算了", "affirm", False),
        ("不对 地址错了", "inform_address", False),
        ("错了", "affirm", False),
    ],
)
def test_the_summary_is_answered_in_context(demo_database, text, classified_as, confirmed):
    slots = confirmed_slots(report_confirmed=None, requested_slot="report_confirmed")
    _, slots_set = form(make_tracker(text, classified_as, slots))
    assert slots_set["report_confirmed"] is confirmed


def test_an_unclear_answer_to_the_summary_gets_the_summary_again(demo_database):
    slots = confirmed_slots(report_confirmed=None, requested_slot="report_confirmed")
    dispatcher, slots_set = form(make_tracker("俺再补充一句 楼道也冷", "report_heating", slots))
    assert responses(dispatcher) == ["utter_answer_yes_or_no"]
    # the slot set to nothing: the form asks for it again, no ticket
    assert "report_confirmed" in slots_set and slots_set["report_confirmed"] is None
    assert tickets(demo_database) == []


def test_an_interruption_at_the_summary_is_left_to_its_rule(demo_database):
    slots = confirmed_slots(report_confirmed=None, requested_slot="report_confirmed")
    _, slots_set = form(make_tracker("你是机器人吗", "bot_challenge", slots))
    assert "report_confirmed" not in slots_set


KNOWN = {"requested_slot": "address", "known_address": "和平新村社区3号楼2单元501"}


@pytest.mark.parametrize(("text", "classified_as"), [("中", "greet"), ("是 还住那", "deny")])
def test_a_yes_to_the_known_address_keeps_it(demo_database, text, classified_as):
    _, slots_set = form(make_tracker(text, classified_as, dict(KNOWN)))
    assert slots_set["address"] == KNOWN["known_address"]


def test_a_no_to_the_known_address_asks_for_the_new_one(demo_database):
    _, slots_set = form(make_tracker("不住那了", "out_of_scope", dict(KNOWN)))
    assert slots_set["address"] is None and slots_set["known_address"] is None


def test_a_new_address_given_with_the_no_is_taken(demo_database):
    _, slots_set = form(make_tracker("不是 俺搬到裕园小区12号楼了", "deny", dict(KNOWN)))
    assert slots_set["address"].startswith("裕园")


def test_an_unclear_answer_to_the_known_address_asks_the_same_again(demo_database):
    dispatcher, slots_set = form(make_tracker("嗯那个俺想想", "nlu_fallback", dict(KNOWN)))
    assert slots_set["address"] is None and "known_address" not in slots_set
    asked, _ = run(ActionAskAddress(), make_tracker(slots={**KNOWN, "address_attempts": 1}))
    assert responses(asked) == ["utter_ask_address_known"]
