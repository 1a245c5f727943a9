"""Answers to the assistant's yes/no questions, read in the question's context.

`action_answer_question` runs for every message bot.dialogue.policy routes to it
(a question is pending, or the message is a bare yes or no) and for affirm/deny
outside a form. What was asked is the tracker's pending question or, failing
that, a resolved ticket waiting for 满意/不满意; the reading is
bot.dialogue.questions.read_reply. Yes/no do what the question offered, an
unclear answer gets the question again (once), never a ticket. A yes to nothing
right after a turn that opened a ticket gets that turn's confirmation again: the
resident may be confirming the summary a second time, never having read the first
answer (lost with a server that died after saving the turn).
"""

from __future__ import annotations

from collections.abc import Callable

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import confidence_of, intent_of, original_text
from actions.report import clear_report, submit
from bot import frontdesk
from bot.dialogue.questions import (
    QUESTION_SLOT,
    PendingQuestion,
    rating_question,
    read_reply,
)
from bot.dialogue.yes_no import (
    CANCEL_TICKET,
    ERASE_DATA,
    ERASE_OPEN_TICKETS,
    RATING,
    RETRY_SUBMIT,
    Answer,
    interpret,
)
from bot.rasa_tracker_store import ERASED_SLOT

# The response that asks each kind of question (ticket_number and
# category_label filled from the question).
ASK_RESPONSES = {
    CANCEL_TICKET: "utter_confirm_cancel",
    RETRY_SUBMIT: "utter_ask_retry_submit",
    RATING: "utter_ask_rating",
    ERASE_OPEN_TICKETS: "utter_ask_erase_open_tickets",
    ERASE_DATA: "utter_ask_erase_data",
}
# What a report's submission says (actions/report.py `submit`): a yes in the turn
# right after it is most likely the summary confirmed again by a resident who never
# read it (the answer lost with a server that died, or pushed too late).
TICKET_OPENED_RESPONSES = frozenset(
    {
        "utter_ticket_opened_grid",
        "utter_ticket_opened_office",
        "utter_handoff_grid",
        "utter_handoff_office",
    }
)
NEIGHBOURS_RESPONSE = "utter_neighbours_reported_too"
# The erase_data question's subject: what to do with open tickets.
WITHDRAW_OPEN, KEEP_OPEN = "withdraw", "keep"


def ask(dispatcher: CollectingDispatcher, question: PendingQuestion) -> list[EventType]:
    """Ask `question` and remember it as pending."""
    dispatcher.utter_message(
        response=ASK_RESPONSES[question.kind],
        ticket_number=question.subject,
        category_label=question.label,
    )
    return [SlotSet(QUESTION_SLOT, question.to_slot())]


def _cancel(
    dispatcher: CollectingDispatcher, tracker: Tracker, question: PendingQuestion, yes: bool
) -> list[EventType]:
    done = [SlotSet(QUESTION_SLOT, None)]
    if not yes:
        dispatcher.utter_message(response="utter_cancel_kept")
        return done
    try:
        frontdesk.cancel(tracker.sender_id, question.subject or "", reason=original_text(tracker))
    except frontdesk.StoreUnavailable:
        dispatcher.utter_message(response="utter_ticket_failed")
        return []  # still pending: the resident may say yes again
    except frontdesk.NotCancellable:  # gone or finished meanwhile
        dispatcher.utter_message(response="utter_nothing_to_cancel")
        return done
    dispatcher.utter_message(response="utter_ticket_cancelled", ticket_number=question.subject)
    return done


def _retry_submit(
    dispatcher: CollectingDispatcher, tracker: Tracker, question: PendingQuestion, yes: bool
) -> list[EventType]:
    if yes:
        return submit(dispatcher, tracker)
    dispatcher.utter_message(response="utter_report_discarded")
    return clear_report()


def _rate(
    dispatcher: CollectingDispatcher, tracker: Tracker, question: PendingQuestion, yes: bool
) -> list[EventType]:
    done = [SlotSet(QUESTION_SLOT, None)]
    try:
        line = frontdesk.rate(
            tracker.sender_id, question.subject or "", yes, comment=original_text(tracker)
        )
    except frontdesk.StoreUnavailable:
        dispatcher.utter_message(response="utter_ticket_failed")
        return []
    except frontdesk.NotRatable:  # closed or reopened meanwhile
        dispatcher.utter_message(response="utter_anything_else")
        return done
    dispatcher.utter_message(
        response="utter_rating_thanks" if yes else "utter_rating_reopened",
        ticket_number=line.ticket_number,
        category_label=line.category_label,
        due_text=line.due_text,
    )
    return done


def _erase_open_tickets(
    dispatcher: CollectingDispatcher, tracker: Tracker, question: PendingQuestion, yes: bool
) -> list[EventType]:
    """Withdraw or keep the open tickets; then the deletion itself is confirmed."""
    subject = WITHDRAW_OPEN if yes else KEEP_OPEN
    return ask(dispatcher, PendingQuestion(ERASE_DATA, subject=subject, label=question.label))


def _erase_data(
    dispatcher: CollectingDispatcher, tracker: Tracker, question: PendingQuestion, yes: bool
) -> list[EventType]:
    if not yes:
        dispatcher.utter_message(response="utter_erasure_cancelled")
        return [SlotSet(QUESTION_SLOT, None)]
    try:
        erased = frontdesk.erase_my_data(
            tracker.sender_id, withdraw_open=question.subject != KEEP_OPEN
        )
    except frontdesk.StoreUnavailable:
        dispatcher.utter_message(response="utter_ticket_failed")
        return []  # still pending: the resident may say yes again
    dispatcher.utter_message(response="utter_data_erased")
    if erased.kept_open:
        dispatcher.utter_message(
            response="utter_data_erased_kept_open", ticket_numbers="、".join(erased.kept_open)
        )
    # the tracker store forgets this conversation instead of saving it
    return [SlotSet(QUESTION_SLOT, None), SlotSet(ERASED_SLOT, True)]


Handler = Callable[[CollectingDispatcher, Tracker, PendingQuestion, bool], list[EventType]]
HANDLERS: dict[str, Handler] = {
    CANCEL_TICKET: _cancel,
    RETRY_SUBMIT: _retry_submit,
    RATING: _rate,
    ERASE_OPEN_TICKETS: _erase_open_tickets,
    ERASE_DATA: _erase_data,
}


def _pending_rating(tracker: Tracker) -> PendingQuestion | None:
    """A resolved ticket of the resident's waiting for 满意/不满意 (asked by the
    resolution notice, outside this conversation)."""
    pending = frontdesk.pending_rating(tracker.sender_id)
    if pending is None:
        return None
    return rating_question(pending.ticket_number, pending.category_label)


def _is_yes(tracker: Tracker) -> bool:
    return (
        interpret(original_text(tracker), None, intent_of(tracker), confidence_of(tracker))
        is Answer.YES
    )


def _ticket_just_opened(tracker: Tracker) -> list[tuple[str, str]]:
    """The previous turn's answer, when it opened a ticket: its (text, response)
    pairs; else []."""
    users = 0
    answer: list[dict] = []
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            users += 1
            if users == 2:
                break
        elif users == 1 and event.get("event") == "bot":
            answer.insert(0, event)
    uttered = [(e.get("metadata") or {}).get("utter_action") for e in answer]
    if not TICKET_OPENED_RESPONSES.intersection(uttered):
        return []
    kept = TICKET_OPENED_RESPONSES | {NEIGHBOURS_RESPONSE}
    return [
        (e["text"], name)
        for e, name in zip(answer, uttered, strict=True)
        if name in kept and e.get("text")
    ]


class ActionAnswerQuestion(Action):
    """The resident's reply to the yes/no question pending."""

    def name(self) -> str:
        return "action_answer_question"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        question = PendingQuestion.from_slot(tracker.get_slot(QUESTION_SLOT))
        confirmation = _ticket_just_opened(tracker) if question is None else []
        if confirmation and _is_yes(tracker):
            # the truth they may have missed (no database needed), not a puzzling
            # "好的" that leaves them reporting it all over again
            for text, response in confirmation:
                # marked as that response again: another lost answer, another yes
                dispatcher.utter_message(text=text, utter_action=response)
            return []
        if question is None or question.kind not in HANDLERS:
            try:
                question = _pending_rating(tracker)
            except frontdesk.StoreUnavailable:
                dispatcher.utter_message(response="utter_ticket_failed")
                return []
        if question is None:  # a yes or a no to nothing in particular
            dispatcher.utter_message(response="utter_anything_else")
            return [SlotSet(QUESTION_SLOT, None)]

        reading = read_reply(
            question, original_text(tracker), intent_of(tracker), confidence_of(tracker)
        )
        if reading.ask_again is not None:
            dispatcher.utter_message(response="utter_answer_yes_or_no")
            return ask(dispatcher, reading.ask_again)
        if reading.dropped:
            dispatcher.utter_message(response="utter_question_dropped")
            return [SlotSet(QUESTION_SLOT, None)]
        return HANDLERS[question.kind](dispatcher, tracker, question, reading.answer is Answer.YES)


class ActionSessionStart(Action):
    """A new conversation session (after 60 minutes of silence): everything
    carries over except a pending question, which was asked too long ago to
    read the next message as its answer."""

    def name(self) -> str:
        return "action_session_start"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        if (domain.get("session_config") or {}).get("carry_over_slots_to_new_session", True):
            events += [
                SlotSet(name, value)
                for name, value in tracker.slots.items()
                if value is not None and name != QUESTION_SLOT
            ]
        events.append(ActionExecuted("action_listen"))
        return events
