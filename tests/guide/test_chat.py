"""Which guide reply answers a question, and the list offered with a request."""

from __future__ import annotations

from bot.guide import book, chat
from bot.settings import PROJECT_ROOT

GUIDES = book.load_guides(PROJECT_ROOT / "data" / "guides")
HPXC, YUYUAN = "和平新村社区", "裕园社区"


def responses(replies: list[chat.Reply]) -> list[str]:
    return [r.response for r in replies]


def test_a_service_question_gets_its_entry_of_the_residents_community() -> None:
    replies = chat.answer("开居住证明要带啥", YUYUAN, guides=GUIDES)
    assert responses(replies) == ["utter_guide_service"]
    values = replies[0].values
    assert values["community"] == YUYUAN and values["service_name"] == "居住证明"
    assert values["materials"].startswith("1. 本人身份证原件")
    assert "9号楼东侧" in values["where"]  # 裕园's window, not 和平新村's


def test_notes_come_as_a_message_of_their_own() -> None:
    replies = chat.answer("低保咋申请", HPXC, guides=GUIDES)
    assert responses(replies) == ["utter_guide_service", "utter_guide_notes"]
    assert "高龄补贴" in replies[1].values["notes"]


def test_office_questions_get_the_office() -> None:
    for question in ("社区几点上班", "居委会电话多少", "居委会在哪"):
        replies = chat.answer(question, HPXC, guides=GUIDES)
        assert responses(replies) == ["utter_guide_office"], question
        assert replies[0].values["office_phone"] == "0531-00000001"


def test_a_question_the_guide_does_not_cover_lists_what_it_does() -> None:
    replies = chat.answer("办护照要带啥", HPXC, guides=GUIDES)
    assert responses(replies) == ["utter_guide_not_found"]
    assert "居住证明" in replies[0].values["service_names"]
    assert replies[0].values["office_hours"] == GUIDES[HPXC].office.hours


def test_an_unknown_community_is_asked_for_when_there_are_several_guides() -> None:
    replies = chat.answer("开居住证明要带啥", None, guides=GUIDES)
    assert responses(replies) == ["utter_guide_which_community"]
    assert replies[0].values["communities"] == "和平新村社区、裕园社区"
    other = chat.answer("开居住证明要带啥", "阳光花园社区", guides=GUIDES)
    assert responses(other) == ["utter_guide_not_for_community"]
    assert other[0].values["community"] == "阳光花园社区"


def test_one_guide_answers_everyone_and_no_guide_says_so() -> None:
    only = {HPXC: GUIDES[HPXC]}
    assert responses(chat.answer("错时停车在哪办", None, guides=only)) == [
        "utter_guide_service",
        "utter_guide_notes",
    ]
    assert responses(chat.answer("错时停车在哪办", HPXC, guides={})) == ["utter_guide_missing"]


def test_homophone_typos_and_pinyin_find_the_service() -> None:
    for question, name in (
        ("低宝要啥材料", "低保申请"),
        ("措时停车在哪半", "错时停车"),
        ("dibao zen me shen qing", "低保申请"),
    ):
        replies = chat.answer(question, HPXC, guides=GUIDES)
        assert replies[0].values.get("service_name") == name, question


def test_a_request_is_offered_the_guides_materials() -> None:
    offer = chat.request_offer("STAGGERED_PARKING", HPXC, guides=GUIDES)
    assert offer is not None and offer.response == "utter_guide_materials"
    assert offer.values["service_name"] == "错时停车"
    assert offer.values["materials"].splitlines()[0] == "1. 机动车行驶证"
    assert chat.request_offer("STAGGERED_PARKING", None, guides=GUIDES) is None
    assert chat.request_offer("HEATING", HPXC, guides=GUIDES) is None  # not a service


def test_the_menus_guide_button_gets_the_list_of_services() -> None:
    for question in ("办事指南", "社区都能办哪些业务"):
        replies = chat.answer(question, HPXC, guides=GUIDES)
        assert responses(replies) == ["utter_guide_overview"], question
        assert replies[0].values["service_names"].startswith("居住证明、低保申请")
