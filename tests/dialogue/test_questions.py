"""The pending yes/no question and what the resident's reply does to it."""

from __future__ import annotations

import pytest

from bot.dialogue.questions import (
    MAX_TIMES_ASKED,
    PendingQuestion,
    answers_pending_question,
    cancel_question,
    rating_question,
    read_reply,
    retry_submit_question,
)
from bot.dialogue.yes_no import CANCEL_TICKET, RATING, RETRY_SUBMIT, Answer


def test_a_question_survives_the_slot_round_trip():
    question = cancel_question("20261127-0007", "供暖供气")
    assert PendingQuestion.from_slot(question.to_slot()) == question
    assert PendingQuestion.from_slot(rating_question("n", None).to_slot()).kind == RATING
    assert PendingQuestion.from_slot(None) is None
    assert PendingQuestion.from_slot({}) is None


def test_older_trackers_string_questions_are_still_read():
    assert PendingQuestion.from_slot("submit") == retry_submit_question()
    assert PendingQuestion.from_slot("cancel:20261127-0007") == PendingQuestion(
        CANCEL_TICKET, subject="20261127-0007"
    )
    assert PendingQuestion.from_slot("something else") is None


def test_yes_and_no_answer_the_question():
    question = cancel_question("20261127-0007", "供暖供气")
    assert read_reply(question, "中", "out_of_scope", 0.9).answer is Answer.YES
    assert read_reply(question, "不撤了", "cancel_ticket", 0.9).answer is Answer.NO


def test_an_unclear_reply_gets_the_question_again_then_drops_it():
    question = PendingQuestion(RETRY_SUBMIT)
    first = read_reply(question, "你是机器人吗", "bot_challenge", 0.99)
    assert first.answer is Answer.UNCLEAR and not first.dropped
    assert first.ask_again == PendingQuestion(RETRY_SUBMIT, times_asked=2)
    again = first.ask_again
    assert again.times_asked == MAX_TIMES_ASKED
    second = read_reply(again, "楼道灯也坏了", "report_facility", 0.99)
    assert second.dropped and second.ask_again is None


@pytest.mark.parametrize(
    ("slot", "text", "intent", "loop", "listened", "expected"),
    [
        # a pending question takes any message, whatever its intent
        (cancel_question("n", "x").to_slot(), "暖气不热", "report_heating", None, True, True),
        (cancel_question("n", "x").to_slot(), "中", "out_of_scope", None, True, True),
        # nothing pending: only a bare yes or no
        (None, "👌", "nlu_fallback", None, True, True),
        (None, "管", "greet", None, True, True),
        (None, "暖气不热", "report_heating", None, True, False),
        (None, "中午楼上装修", "report_noise", None, True, False),
        # a form reads its own answers
        (cancel_question("n", "x").to_slot(), "是", "affirm", "report_form", True, False),
        # only right after the resident spoke
        (cancel_question("n", "x").to_slot(), "是", "affirm", None, False, False),
        # photos, locations, button intents are not answers
        (cancel_question("n", "x").to_slot(), "[图片]", "share_photo", None, True, False),
        (cancel_question("n", "x").to_slot(), "/affirm", "affirm", None, True, False),
        (None, None, None, None, True, False),
    ],
)
def test_which_messages_go_to_the_answer(slot, text, intent, loop, listened, expected):
    assert (
        answers_pending_question(slot, text, intent, active_loop=loop, just_listened=listened)
        is expected
    )
