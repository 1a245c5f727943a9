"""A resident's earlier reports: progress, and withdrawing one."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import original_text
from actions.report import PENDING_SUBMIT, clear_report, submit
from bot import frontdesk

PENDING_CANCEL = "cancel:"


class ActionCheckTickets(Action):
    """Lists the resident's tickets in hand with status and latest note."""

    def name(self) -> str:
        return "action_check_tickets"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            lines = frontdesk.open_tickets(tracker.sender_id)
        except frontdesk.StoreUnavailable:
            dispatcher.utter_message(response="utter_ticket_failed")
            return []
        if not lines:
            dispatcher.utter_message(response="utter_no_open_tickets")
            return []
        dispatcher.utter_message(response="utter_open_tickets_header", count=len(lines))
        for line in lines:
            dispatcher.utter_message(
                response=(
                    "utter_ticket_status_with_note" if line.latest_note else "utter_ticket_status"
                ),
                ticket_number=line.ticket_number,
                category_label=line.category_label,
                status_label=line.status_label,
                latest_note=line.latest_note,
                due_text=line.due_text,
            )
        return []


class ActionProposeCancel(Action):
    """Finds the ticket the resident wants to withdraw and asks to confirm."""

    def name(self) -> str:
        return "action_propose_cancel"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            line = frontdesk.cancellable_ticket(tracker.sender_id, original_text(tracker))
        except frontdesk.StoreUnavailable:
            dispatcher.utter_message(response="utter_ticket_failed")
            return []
        if line is None:
            dispatcher.utter_message(response="utter_nothing_to_cancel")
            return [SlotSet("pending_question", None)]
        dispatcher.utter_message(
            response="utter_confirm_cancel",
            ticket_number=line.ticket_number,
            category_label=line.category_label,
        )
        return [SlotSet("pending_question", PENDING_CANCEL + line.ticket_number)]


class ActionAnswerAffirm(Action):
    """A yes outside a form answers the question the assistant asked last."""

    def name(self) -> str:
        return "action_answer_affirm"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        question = tracker.get_slot("pending_question") or ""
        if question.startswith(PENDING_CANCEL):
            number = question[len(PENDING_CANCEL) :]
            try:
                frontdesk.cancel(tracker.sender_id, number, reason=original_text(tracker))
            except frontdesk.StoreUnavailable:
                dispatcher.utter_message(response="utter_ticket_failed")
                return []
            except frontdesk.NotCancellable:  # gone or finished meanwhile
                dispatcher.utter_message(response="utter_nothing_to_cancel")
                return [SlotSet("pending_question", None)]
            dispatcher.utter_message(response="utter_ticket_cancelled", ticket_number=number)
            return [SlotSet("pending_question", None)]
        if question == PENDING_SUBMIT:
            return submit(dispatcher, tracker)
        rated = answer_rating(dispatcher, tracker, satisfied=True)
        if rated is not None:
            return rated
        dispatcher.utter_message(response="utter_anything_else")
        return []


class ActionAnswerDeny(Action):
    """A no outside a form: keep the ticket, drop the unsent report."""

    def name(self) -> str:
        return "action_answer_deny"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        question = tracker.get_slot("pending_question") or ""
        if question.startswith(PENDING_CANCEL):
            dispatcher.utter_message(response="utter_cancel_kept")
            return [SlotSet("pending_question", None)]
        if question == PENDING_SUBMIT:
            dispatcher.utter_message(response="utter_report_discarded")
            return clear_report()
        rated = answer_rating(dispatcher, tracker, satisfied=False)
        if rated is not None:
            return rated
        dispatcher.utter_message(response="utter_anything_else")
        return []


def answer_rating(
    dispatcher: CollectingDispatcher, tracker: Tracker, satisfied: bool
) -> list[EventType] | None:
    """满意 / 不满意 after a resolution notice rates the resident's resolved ticket.

    None when there is nothing to rate (the yes / no then means something else).
    """
    try:
        pending = frontdesk.pending_rating(tracker.sender_id)
        if pending is None:
            return None
        line = frontdesk.rate(
            tracker.sender_id, pending.ticket_number, satisfied, comment=original_text(tracker)
        )
    except frontdesk.StoreUnavailable:
        dispatcher.utter_message(response="utter_ticket_failed")
        return []
    except frontdesk.NotRatable:  # closed or reopened meanwhile
        return None
    dispatcher.utter_message(
        response="utter_rating_thanks" if satisfied else "utter_rating_reopened",
        ticket_number=line.ticket_number,
        category_label=line.category_label,
        due_text=line.due_text,
    )
    return []
