"""Conversations against the running Rasa server and action server (REST channel),
checked in the replies and in the ticket database."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.rasa_server

TICKET_NUMBER = re.compile(r"\d{8}-\d{4}")


class Resident:
    """One resident talking to the assistant over the REST channel."""

    def __init__(self, rasa_url: str, sender: str | None = None) -> None:
        self.url = f"{rasa_url}/webhooks/rest/webhook"
        self.sender = sender or f"test-{uuid.uuid4().hex[:12]}"

    def say(self, message: str) -> str:
        response = requests.post(
            self.url, json={"sender": self.sender, "message": message}, timeout=60
        )
        response.raise_for_status()
        return "\n".join(m.get("text", "") for m in response.json())


def tickets_of(database_url: str, sender: str) -> list[dict]:
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT t.number, t.category_code, t.status, t.level, t.channel,"
                    " t.original_text, t.description, t.building, t.unit, t.room,"
                    " g.code AS grid, c.name AS community"
                    " FROM tickets t LEFT JOIN grids g ON g.id = t.grid_id"
                    " LEFT JOIN communities c ON c.id = t.community_id"
                    " WHERE t.sender_id = :sender ORDER BY t.id"
                ),
                {"sender": sender},
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def test_greeting_answers_with_the_menu(rasa_stack):
    reply = Resident(rasa_stack.rasa_url).say("你好")
    assert "反映问题" in reply and "找社区工作人员" in reply


def test_bot_challenge_is_answered_honestly(rasa_stack):
    reply = Resident(rasa_stack.rasa_url).say("跟我聊天的是真人还是机器")
    assert "不是真人" in reply


def test_report_heating_opens_a_ticket_for_the_grid_worker(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    reply = resident.say("俺家暖氣不熱好幾天了 屋里才十四度")
    assert "供暖供气" in reply
    assert "您住在哪个小区几号楼几单元" in reply

    reply = resident.say("和平新村三号楼2单元501")
    assert "确认提交吗" in reply and "和平新村社区3号楼2单元501" in reply

    reply = resident.say("是的")
    number = TICKET_NUMBER.search(reply)
    assert number, reply
    assert "王芳" in reply and "13800000001" in reply

    [ticket] = tickets_of(rasa_stack.database_url, resident.sender)
    assert ticket["number"] == number.group()
    assert ticket["category_code"] == "HEATING"
    assert ticket["grid"] == "HPXC-01" and ticket["level"] == "grid"
    assert ticket["channel"] == "rest" and ticket["status"] == "open"
    assert ticket["original_text"] == "俺家暖氣不熱好幾天了 屋里才十四度"
    assert (ticket["building"], ticket["unit"], ticket["room"]) == (3, "2", "501")

    # the address is remembered: next time only "还是…吗？"
    reply = resident.say("楼道里的灯坏了好几天了 晚上黑咕隆咚的")
    assert "还是和平新村社区3号楼2单元501室吗" in reply
    assert "确认提交吗" in resident.say("对")
    assert TICKET_NUMBER.search(resident.say("确认"))
    assert [t["category_code"] for t in tickets_of(rasa_stack.database_url, resident.sender)] == [
        "HEATING",
        "FACILITY",
    ]

    # progress, then withdrawing one
    reply = resident.say("我上次反映的暖气咋样了")
    assert number.group() in reply and "供暖供气" in reply
    reply = resident.say("暖气那个不用了 已经修好了")
    assert "要撤销" in reply
    assert "已撤销" in resident.say("是")
    statuses = {
        t["category_code"]: t["status"]
        for t in tickets_of(rasa_stack.database_url, resident.sender)
    }
    assert statuses == {"HEATING": "cancelled", "FACILITY": "open"}


def test_address_in_the_first_message_is_not_asked_again(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    reply = resident.say("裕园小区12号楼门口好几辆僵尸车 落满了灰 一年没动过了")
    assert "停车管理" in reply and "确认提交吗" in reply
    assert TICKET_NUMBER.search(resident.say("是"))
    [ticket] = tickets_of(rasa_stack.database_url, resident.sender)
    assert ticket["grid"] == "YY-02" and ticket["category_code"] == "PARKING"


def test_a_bare_category_asks_for_details(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    assert "能具体说说吗" in resident.say("投诉噪音")


def test_dispute_goes_to_the_community_office_with_mediation_note(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    reply = resident.say("楼上家天天往下漏水 俺家天花板都泡了 去说了好几回他家就是不管")
    assert "邻里纠纷" in reply and "免费" in reply
    resident.say("和平新村8号楼1单元302")
    reply = resident.say("是")
    assert TICKET_NUMBER.search(reply) and "居委会" in reply
    [ticket] = tickets_of(rasa_stack.database_url, resident.sender)
    assert ticket["level"] == "community" and ticket["grid"] == "HPXC-01"


def test_asking_what_a_service_needs_lists_the_materials(rasa_stack):
    reply = Resident(rasa_stack.rasa_url).say("和平新村的 想给孩子上学开个居住证明 需要带啥")
    assert "身份证" in reply and "户口本" in reply


def test_saying_no_to_the_summary_opens_nothing(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    resident.say("小区门口的垃圾三天没人收了 臭得不行")
    resident.say("和平新村15号楼")
    assert "先不提交" in resident.say("不是")
    assert tickets_of(rasa_stack.database_url, resident.sender) == []


def test_unknown_address_is_asked_twice_then_handed_over(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    resident.say("路灯坏了一个多礼拜了 晚上走路害怕")
    assert "例如" in resident.say("就在那边")
    assert "例如" in resident.say("俺也说不清")
    reply = resident.say("就在小区里头 说不上来是哪栋")
    assert "社区办公室" in reply and "确认提交吗" in reply
    assert TICKET_NUMBER.search(resident.say("是"))
    [ticket] = tickets_of(rasa_stack.database_url, resident.sender)
    assert ticket["grid"] is None


def test_asking_for_a_person_opens_a_call_back_ticket(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    assert "几号楼" in resident.say("找个人跟我说")
    reply = resident.say("裕园3号楼2单元")
    assert TICKET_NUMBER.search(reply) and "联系" in reply
    [ticket] = tickets_of(rasa_stack.database_url, resident.sender)
    assert ticket["category_code"] == "HANDOFF" and ticket["grid"] == "YY-01"


@pytest.mark.parametrize(
    "message",
    ["", "😡😡😡", "？？？！！！", "暖气" * 2500, "hello how are you", "'; DROP TABLE tickets;--"],
    ids=["empty", "emoji", "punctuation", "5000-chars", "english", "sql"],
)
def test_bad_input_gets_a_reply_and_the_conversation_goes_on(rasa_stack, message):
    resident = Resident(rasa_stack.rasa_url)
    assert resident.say(message).strip()
    assert "反映问题" in resident.say("你好")


def test_sql_in_a_report_is_stored_as_plain_text(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    evil = "楼道堆满了杂物 '; DROP TABLE tickets;-- 和平新村5号楼"
    resident.say(evil)
    resident.say("是")
    [ticket] = tickets_of(rasa_stack.database_url, resident.sender)
    assert ticket["original_text"] == evil


def test_traditional_and_simplified_are_understood_alike(rasa_stack):
    def intent(message: str) -> str:
        response = requests.post(
            f"{rasa_stack.rasa_url}/model/parse",
            json={"text": message},
            params=rasa_stack.rasa_api_params,
            timeout=30,
        )
        return response.json()["intent"]["name"]

    for traditional, simplified in [
        ("暖氣不熱 屋裡冷得不行", "暖气不热 屋里冷得不行"),
        ("電梯壞了 把人關在裡面了", "电梯坏了 把人关在里面了"),
        ("請問低保怎麼申請", "请问低保怎么申请"),
    ]:
        assert intent(traditional) == intent(simplified)


def test_every_message_is_logged_in_the_sql_tracker_store(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    resident.say("你好")
    resident.say("谢谢")
    engine = create_engine(rasa_stack.env["TRACKER_DATABASE_URL"], future=True)
    try:
        with engine.connect() as connection:
            texts = (
                connection.execute(
                    text(
                        "SELECT data FROM events WHERE sender_id = :sender AND type_name = 'user'"
                        " ORDER BY id"
                    ),
                    {"sender": resident.sender},
                )
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    assert [json.loads(row)["text"] for row in texts] == ["你好", "谢谢"]


def test_never_mind_when_asked_where_drops_the_report(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    assert "几号楼" in resident.say("小区门口的路灯不亮了 晚上黑乎乎的")
    assert "先不提交" in resident.say("算了 不用了")
    assert tickets_of(rasa_stack.database_url, resident.sender) == []


def test_yes_and_no_are_read_in_the_context_of_the_question(rasa_stack):
    """Dialect and gesture answers confirm, an answer that is neither gets the
    question again and never a ticket (issue 10), whatever the classifier thinks."""
    resident = Resident(rasa_stack.rasa_url)
    db = rasa_stack.database_url
    resident.say("俺们楼道的灯坏了好几天了 晚上黑咕隆咚的")
    assert "确认提交吗" in resident.say("和平新村三号楼2单元501")
    # neither yes nor no: the summary again, nothing opened
    reply = resident.say("俺想想咋说")
    assert "确认提交吗" in reply and tickets_of(db, resident.sender) == []
    assert TICKET_NUMBER.search(resident.say("管"))

    # the known address: "还是…吗？" answered in dialect, the summary with a gesture
    assert "还是和平新村社区3号楼2单元501" in resident.say("楼下的狗天天半夜叫唤")
    assert "确认提交吗" in resident.say("中")
    assert TICKET_NUMBER.search(resident.say("👌"))

    # withdrawing: something else first (asked again), then a no
    assert "要撤销" in resident.say("狗的事不用管了 撤了吧")
    reply = resident.say("楼道的灯修了没")
    assert "要撤销" in reply and "是" in reply
    assert "继续为您办理" in resident.say("算了 不撤了")
    statuses = [t["status"] for t in tickets_of(db, resident.sender)]
    assert statuses == ["open", "open"]


def test_asking_how_is_answered_from_the_communitys_guide(rasa_stack):
    """Issue 11: asking how gets the guide at once, no ticket; an unknown
    community is asked for and the question answered when it is named."""
    resident = Resident(rasa_stack.rasa_url)
    reply = resident.say("和平新村社区开居住证明要带啥")
    assert "本人身份证原件" in reply and "便民服务窗口" in reply

    other = Resident(rasa_stack.rasa_url)
    assert "哪个社区" in other.say("社区几点上班啊")
    reply = other.say("裕园小区9号楼")
    assert "裕园9号楼东侧平房" in reply and "8:30-12:00" in reply
    assert tickets_of(rasa_stack.database_url, resident.sender) == []
    assert tickets_of(rasa_stack.database_url, other.sender) == []


def test_asking_to_have_it_done_offers_the_list_and_opens_the_ticket(rasa_stack):
    resident = Resident(rasa_stack.rasa_url)
    reply = resident.say("和平新村3号楼2单元501 帮俺开个居住证明 孩子上学用")
    assert "办理居住证明需要带" in reply and "本人身份证原件" in reply
    assert "确认提交吗" in reply
    assert TICKET_NUMBER.search(resident.say("是"))
    [ticket] = tickets_of(rasa_stack.database_url, resident.sender)
    assert ticket["category_code"] == "CERTIFICATE"
