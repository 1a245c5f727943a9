"""A resident's earlier reports: progress, and withdrawing one."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import ask
from actions.common import original_text
from bot import frontdesk
from bot.dialogue.questions import QUESTION_SLOT, cancel_question


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
            return [SlotSet(QUESTION_SLOT, None)]
        # the answer is read by action_answer_question (actions/answers.py)
        return ask(dispatcher, cancel_question(line.ticket_number, line.category_label))
