"""我的信息 / 删除我的信息 with trackers: asked first, confirmed, then nothing
is found under the OpenID; a no or an unclear answer changes nothing."""

from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher

from actions.answers import ActionAnswerQuestion
from actions.privacy import ActionMyData, ActionProposeErasure
from bot import frontdesk
from tests.actions.conftest import DOMAIN, make_tracker, responses, slot_events

ME = "oResidentPrivacy01"
OTHER = "oResidentPrivacy02"


def run(action, tracker):
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, DOMAIN)
    return dispatcher, events


def report(sender: str, message_id: str) -> str:
    return frontdesk.submit_report(
        sender_id=sender,
        channel="wechat",
        message_id=message_id,
        category_code="HEATING",
        description="暖气不热 电话13812345678",
        original_text="暖气不热 电话13812345678",
        located=frontdesk.locate_text("和平新村3号楼2单元501"),
        photos=[],
    ).ticket_number


def answer(text: str, question: dict, intent: str | None = None):
    tracker = make_tracker(text, intent, {"pending_question": question}, sender_id=ME)
    return run(ActionAnswerQuestion(), tracker)


def test_my_data_lists_what_is_kept(demo_database):
    report(ME, "m1")
    dispatcher, _ = run(ActionMyData(), make_tracker("我的信息", "ask_my_data", sender_id=ME))
    assert responses(dispatcher) == ["utter_my_data"]
    assert dispatcher.messages[0]["open_count"] == 1
    dispatcher, _ = run(ActionMyData(), make_tracker("我的信息", "ask_my_data", sender_id="oNew"))
    assert responses(dispatcher) == ["utter_my_data_nothing"]


def test_open_tickets_are_asked_about_then_the_deletion_is_confirmed(demo_database):
    mine = report(ME, "m1")
    theirs = report(OTHER, "m2")
    dispatcher, events = run(
        ActionProposeErasure(), make_tracker("删除我的信息", "delete_my_data", sender_id=ME)
    )
    assert responses(dispatcher) == ["utter_ask_erase_open_tickets"]
    question = slot_events(events)["pending_question"]
    assert question["kind"] == "erase_open_tickets" and mine in question["label"]

    # 撤销: nothing is deleted yet, the deletion itself is asked for
    dispatcher, events = answer("撤销", question)
    assert responses(dispatcher) == ["utter_ask_erase_data"]
    question = slot_events(events)["pending_question"]
    assert question == {**question, "kind": "erase_data", "subject": "withdraw"}
    assert frontdesk.my_data(ME).open_tickets  # untouched so far

    dispatcher, events = answer("嗯 删吧", question, "affirm")
    assert responses(dispatcher) == ["utter_data_erased"]
    assert slot_events(events) == {"pending_question": None, "data_erased": True}
    assert frontdesk.my_data(ME).nothing
    assert frontdesk.open_tickets(ME) == []
    # the other resident keeps everything
    assert [t.ticket_number for t in frontdesk.open_tickets(OTHER)] == [theirs]


def test_keeping_open_tickets_says_so(demo_database):
    mine = report(ME, "m1")
    _, events = run(
        ActionProposeErasure(), make_tracker("删除我的信息", "delete_my_data", sender_id=ME)
    )
    _, events = answer("保留", slot_events(events)["pending_question"])
    dispatcher, events = answer("是", slot_events(events)["pending_question"], "affirm")
    assert responses(dispatcher) == ["utter_data_erased", "utter_data_erased_kept_open"]
    assert dispatcher.messages[1]["ticket_numbers"] == mine
    assert [t.ticket_number for t in frontdesk.open_tickets(ME)] == [mine]


def test_a_no_or_an_unclear_answer_deletes_nothing(demo_database):
    report(ME, "m1")
    question = {"kind": "erase_data", "subject": "withdraw", "label": None, "times_asked": 1}
    dispatcher, events = answer("不删了", question, "affirm")  # the classifier's yes loses
    assert responses(dispatcher) == ["utter_erasure_cancelled"]
    assert "data_erased" not in slot_events(events)
    dispatcher, events = answer("明天下雨吗", question, "out_of_scope")
    assert responses(dispatcher) == ["utter_answer_yes_or_no", "utter_ask_erase_data"]
    dispatcher, events = answer("嗯……再说吧", slot_events(events)["pending_question"])
    assert "data_erased" not in slot_events(events)
    assert len(frontdesk.my_data(ME).open_tickets) == 1


def test_nothing_kept_nothing_asked(demo_database):
    dispatcher, events = run(
        ActionProposeErasure(), make_tracker("删除我的信息", "delete_my_data", sender_id=ME)
    )
    assert responses(dispatcher) == ["utter_my_data_nothing"]
    assert slot_events(events) == {"pending_question": None}
