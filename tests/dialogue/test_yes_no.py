"""Yes/no answers read in the question's context (bot/dialogue/yes_no.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.dialogue.yes_no import (
    CANCEL_TICKET,
    CONFIRM_REPORT,
    ERASE_DATA,
    ERASE_OPEN_TICKETS,
    KNOWN_ADDRESS,
    RATING,
    RETRY_SUBMIT,
    Answer,
    get_lexicon,
    interpret,
    is_bare_answer,
    load_lexicon,
    read_answer,
)

QUESTIONS = [None, CONFIRM_REPORT, KNOWN_ADDRESS, CANCEL_TICKET, RATING, RETRY_SUBMIT]

# The answers issue 10 names, as residents write them.
YES = [
    "嗯",
    "中",
    "管",
    "行吧",
    "对对对",
    "ok",
    "OK",
    "👌",
    "👌🏻",
    "没错",
    "嗯嗯 好的 谢谢",
    "是的。",
]
NO = ["不对", "算了", "不用", "错了", "不对不对", "算了吧", "不中", "不管", "甭", "❌"]


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("text", YES)
def test_residents_yes_confirms_whatever_was_asked(text, question):
    assert read_answer(text, question) is Answer.YES
    assert is_bare_answer(text, question)


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("text", NO)
def test_residents_no_refuses_whatever_was_asked(text, question):
    assert read_answer(text, question) is Answer.NO
    assert is_bare_answer(text, question)


@pytest.mark.parametrize(
    "text",
    [
        "中午楼上装修",  # starts like 中
        "管子漏了",  # starts like 管
        "好冷啊",  # starts like 好
        "对了 俺家暖气也不热",  # 对了 = by the way
        "是这样的 我家暖气不热",  # a preamble, not a yes
        "您好",
        "暖气不热",  # 不 is no answer by itself
        "俺们小区的路灯坏了好几天了 晚上黑咕隆咚的",
        "",
        "🐶",
    ],
)
def test_messages_about_something_else_are_no_answer(text):
    for question in QUESTIONS:
        assert read_answer(text, question) is Answer.UNCLEAR
        assert not is_bare_answer(text, question)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("可不是嘛", Answer.YES),  # holds 不是, means yes
        ("那可不", Answer.YES),
        ("没错 是俺家", Answer.YES),
        ("没问题", Answer.YES),
        ("不孬", Answer.YES),  # Shandong: good
        ("不对 是8号楼", Answer.NO),
        ("对 不过楼号写错了", Answer.NO),  # any no wins
        ("嗯 不对", Answer.NO),
        ("地址不对", Answer.NO),
        ("那不行", Answer.NO),
        ("地址对不对啊", Answer.UNCLEAR),  # a question back, not 不对
        ("是不是得等等", Answer.UNCLEAR),
        ("让俺再想想", Answer.UNCLEAR),
        ("好了好了 暖气热乎了 明天还得上班 孩子也要上学 先这样", Answer.UNCLEAR),
    ],
)
def test_mixed_and_tricky_answers(text, answer):
    assert read_answer(text, CONFIRM_REPORT) is answer


@pytest.mark.parametrize(
    ("text", "question", "answer"),
    [
        ("撤吧", CANCEL_TICKET, Answer.YES),
        ("不用来了 好了", CANCEL_TICKET, Answer.YES),  # the matter is over: withdraw
        ("不用来了 好了", CONFIRM_REPORT, Answer.NO),
        ("不撤 继续办", CANCEL_TICKET, Answer.NO),
        ("还没好呢", CANCEL_TICKET, Answer.NO),
        ("撤了吧", CONFIRM_REPORT, Answer.NO),  # to the summary: do not submit
        ("提交吧", CONFIRM_REPORT, Answer.YES),
        ("是 还住那", KNOWN_ADDRESS, Answer.YES),
        ("不住那了", KNOWN_ADDRESS, Answer.NO),
        ("搬家了", KNOWN_ADDRESS, Answer.NO),
        ("搬家了", CANCEL_TICKET, Answer.UNCLEAR),
        ("满意", RATING, Answer.YES),
        ("得劲", RATING, Answer.YES),
        ("还行", RATING, Answer.YES),
        ("不满意 还是不热", RATING, Answer.NO),
        ("人没来", RATING, Answer.NO),
        ("再试试", RETRY_SUBMIT, Answer.YES),
    ],
)
def test_words_that_depend_on_the_question(text, question, answer):
    assert read_answer(text, question) is answer


def test_the_classifier_decides_only_when_the_words_say_nothing_and_it_is_sure():
    # words win over the classifier
    assert interpret("中", CONFIRM_REPORT, "out_of_scope", 0.99) is Answer.YES
    assert interpret("算了", CONFIRM_REPORT, "affirm", 0.99) is Answer.NO
    # unknown wording: a sure affirm / deny counts
    assert interpret("就按您说的办", CONFIRM_REPORT, "affirm", 0.95) is Answer.YES
    assert interpret("就按您说的办", CONFIRM_REPORT, "affirm", 0.5) is Answer.UNCLEAR
    assert interpret("俺不干", CONFIRM_REPORT, "deny", 0.7) is Answer.NO
    assert interpret("暖气不热", CONFIRM_REPORT, "report_heating", 0.99) is Answer.UNCLEAR
    # an unsure word is never overruled
    assert interpret("再想想", CONFIRM_REPORT, "affirm", 0.99) is Answer.UNCLEAR


def test_lexicon_file_knows_every_question_kind():
    assert get_lexicon().questions == {
        CONFIRM_REPORT,
        KNOWN_ADDRESS,
        CANCEL_TICKET,
        RATING,
        RETRY_SUBMIT,
        ERASE_OPEN_TICKETS,
        ERASE_DATA,
    }
    # YAML 1.1 would turn "yes"/"no" into booleans: the file quotes them
    assert "yes" in get_lexicon().yes and "no" in get_lexicon().no


def test_a_lexicon_can_be_extended_without_code(tmp_path: Path):
    path = tmp_path / "yes_no.yml"
    path.write_text(
        "yes_words: [是]\nno_words: [不是]\nfiller_words: [啊]\n"
        "questions:\n  delete_my_data:\n    yes_words: [删吧]\n    no_words: [留着]\n",
        encoding="utf-8",
    )
    lexicon = load_lexicon(path)
    assert lexicon.questions == {"delete_my_data"}
    assert lexicon.vocabulary("delete_my_data")["删吧"] == "yes"
    assert "删吧" not in lexicon.vocabulary(None)
