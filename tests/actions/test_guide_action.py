from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher

from actions.guide import ActionAnswerGuide
from actions.report import ActionStartReport
from bot import frontdesk
from tests.actions.conftest import DOMAIN, make_tracker, responses, slot_events


def run(action, tracker):
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, DOMAIN)
    return dispatcher, events


def test_the_community_named_in_the_question_picks_its_guide(demo_database):
    dispatcher, events = run(
        ActionAnswerGuide(), make_tracker("裕园小区开居住证明要带啥", intent="ask_guide")
    )
    assert responses(dispatcher) == ["utter_guide_service"]
    assert dispatcher.messages[0]["community"] == "裕园社区"
    assert dispatcher.messages[0]["service_name"] == "居住证明"
    assert slot_events(events) == {"guide_question": None}


def test_the_address_of_the_conversation_picks_the_guide(demo_database):
    located = {"community": "和平新村社区", "building": 3, "grid": "HPXC-01", "level": "grid"}
    dispatcher, _ = run(
        ActionAnswerGuide(),
        make_tracker("社区几点上班", intent="ask_guide", slots={"located": located}),
    )
    assert responses(dispatcher) == ["utter_guide_office"]
    assert dispatcher.messages[0]["office_name"].startswith("和平新村社区")


def test_without_a_community_it_asks_and_answers_when_told(demo_database):
    dispatcher, events = run(
        ActionAnswerGuide(), make_tracker("错时停车在哪办", intent="ask_guide")
    )
    assert responses(dispatcher) == ["utter_guide_which_community"]
    assert slot_events(events) == {"guide_question": "错时停车在哪办"}

    dispatcher, events = run(
        ActionAnswerGuide(),
        make_tracker(
            "和平新村5号楼",
            intent="inform_address",
            slots={"guide_question": "错时停车在哪办"},
        ),
    )
    assert responses(dispatcher) == ["utter_guide_service", "utter_guide_notes"]
    assert dispatcher.messages[0]["service_name"] == "错时停车"
    assert dispatcher.messages[0]["community"] == "和平新村社区"
    assert slot_events(events) == {"guide_question": None}


def test_an_address_after_a_full_answer_asks_what_the_matter_is(demo_database):
    dispatcher, _ = run(ActionAnswerGuide(), make_tracker("和平新村5号楼", intent="inform_address"))
    assert responses(dispatcher) == ["utter_ask_what_matter"]


def test_a_database_down_still_gets_an_honest_answer(demo_database, monkeypatch):
    def down(*args, **kwargs):
        raise frontdesk.StoreUnavailable("down")

    monkeypatch.setattr(frontdesk, "locate_text", down)
    monkeypatch.setattr(frontdesk, "known_address", down)
    dispatcher, _ = run(ActionAnswerGuide(), make_tracker("低保咋申请", intent="ask_guide"))
    assert responses(dispatcher) == ["utter_guide_which_community"]


def test_a_service_request_is_offered_the_guides_list_before_the_ticket(demo_database):
    dispatcher, events = run(
        ActionStartReport(),
        make_tracker("和平新村3号楼2单元501 帮我开个居住证明", intent="request_certificate"),
    )
    assert responses(dispatcher) == ["utter_ack_category", "utter_guide_materials"]
    assert dispatcher.messages[1]["service_name"] == "居住证明"
    assert "本人身份证原件" in dispatcher.messages[1]["materials"]
    # the report goes on as before: address found, the form asks the rest
    assert slot_events(events)["address"] == "和平新村社区3号楼2单元501室"


def test_a_request_naming_only_the_community_gets_its_guides_list(demo_database):
    dispatcher, events = run(
        ActionStartReport(),
        make_tracker("裕园小区的 帮俺开个居住证明", intent="request_certificate"),
    )
    assert responses(dispatcher) == ["utter_ack_category", "utter_guide_materials"]
    assert "9号楼东侧" in dispatcher.messages[1]["where"]  # 裕园's window
    assert slot_events(events)["address"] is None  # the form still asks where


def test_without_a_community_the_general_checklist_is_offered(demo_database):
    dispatcher, _ = run(
        ActionStartReport(), make_tracker("帮俺开个居住证明", intent="request_certificate")
    )
    assert responses(dispatcher) == ["utter_ack_category", "utter_checklist_CERTIFICATE"]


def test_a_complaint_gets_no_guide_list(demo_database):
    dispatcher, _ = run(
        ActionStartReport(),
        make_tracker("和平新村3号楼2单元501 暖气不热", intent="report_heating"),
    )
    assert responses(dispatcher) == ["utter_ack_category"]
