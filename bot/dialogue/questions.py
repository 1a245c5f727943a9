"""The yes/no question the assistant is waiting to have answered.

Whoever asks a yes/no question outside a form (withdraw this ticket? submit
again? satisfied?) records it in the tracker slot `pending_question`, so the
resident's next message is read as the answer to it (bot.dialogue.policy routes
it, bot.dialogue.yes_no reads it) whatever the intent classifier makes of it.
Questions inside the report form (the summary, "还是…吗？") are the form's
requested slots and are read by the form's validation in the same way.

A question is asked at most MAX_TIMES_ASKED times: after that many unclear
answers it is dropped without doing anything, so nobody is trapped answering it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.dialogue.yes_no import (
    CANCEL_TICKET,
    RATING,
    RETRY_SUBMIT,
    Answer,
    interpret,
    is_bare_answer,
)

QUESTION_SLOT = "pending_question"
MAX_TIMES_ASKED = 2

# Intents sent by the messenger channel for non-text messages: a photo or a
# location while a question is pending is not an answer to it.
CHANNEL_INTENTS = frozenset(
    {"share_location", "share_photo", "voice_unrecognised", "unsupported_message"}
)


@dataclass(frozen=True)
class PendingQuestion:
    """A yes/no question asked and not answered yet.

    `kind` is a question kind of data/yes_no.yml (its own answer words);
    `subject` what it is about (a ticket number), `label` how it was named to
    the resident (a category label) so it can be asked again in the same words.
    """

    kind: str
    subject: str | None = None
    label: str | None = None
    times_asked: int = 1

    def to_slot(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "label": self.label,
            "times_asked": self.times_asked,
        }

    @classmethod
    def from_slot(cls, value: Any) -> PendingQuestion | None:
        """The question in the slot, or None. Reads the older string form too
        ("submit", "cancel:20261127-0007") that trackers may still carry."""
        if isinstance(value, dict) and value.get("kind"):
            return cls(
                kind=str(value["kind"]),
                subject=value.get("subject"),
                label=value.get("label"),
                times_asked=int(value.get("times_asked") or 1),
            )
        if isinstance(value, str) and value:
            if value == "submit":
                return cls(RETRY_SUBMIT)
            if value.startswith("cancel:"):
                return cls(CANCEL_TICKET, subject=value[len("cancel:") :] or None)
        return None

    def asked_again(self) -> PendingQuestion:
        return PendingQuestion(self.kind, self.subject, self.label, self.times_asked + 1)

    @property
    def may_ask_again(self) -> bool:
        return self.times_asked < MAX_TIMES_ASKED


@dataclass(frozen=True)
class Reading:
    """What to do with the resident's message given the pending question."""

    answer: Answer
    # the question asked again (UNCLEAR, asked fewer than MAX_TIMES_ASKED times)
    ask_again: PendingQuestion | None = None
    # UNCLEAR once too often: drop the question, change nothing
    dropped: bool = False


def read_reply(
    question: PendingQuestion, text: str, intent: str | None, confidence: float | None
) -> Reading:
    """The resident's reply to `question`: yes, no, ask again, or give up."""
    answer = interpret(text, question.kind, intent, confidence)
    if answer is not Answer.UNCLEAR:
        return Reading(answer)
    if question.may_ask_again:
        return Reading(answer, ask_again=question.asked_again())
    return Reading(answer, dropped=True)


def rating_question(ticket_number: str, category_label: str | None) -> PendingQuestion:
    return PendingQuestion(RATING, subject=ticket_number, label=category_label)


def cancel_question(ticket_number: str, category_label: str | None) -> PendingQuestion:
    return PendingQuestion(CANCEL_TICKET, subject=ticket_number, label=category_label)


def retry_submit_question() -> PendingQuestion:
    return PendingQuestion(RETRY_SUBMIT)


def answers_pending_question(
    slot_value: Any,
    text: str | None,
    intent: str | None,
    *,
    active_loop: str | None,
    just_listened: bool,
) -> bool:
    """Should the resident's latest message go to the answer action?

    Yes when the assistant is listening outside any form and either a question
    is pending or the message is nothing but a yes or a no ("中", "👌", "不对"):
    the answer action then knows what was asked (the tracker's question, or a
    rating the ticket store is waiting for). Photos, locations and the like
    are left to their own rules; a form reads its own answers.
    """
    if not just_listened or active_loop or intent in CHANNEL_INTENTS:
        return False
    if text is None or text.startswith("/"):
        return False  # an intent sent by a button or a channel
    if PendingQuestion.from_slot(slot_value) is not None:
        return True
    return is_bare_answer(text)
