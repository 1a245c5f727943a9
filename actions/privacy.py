"""A resident's own data: what is kept (我的信息) and deleting it (删除我的信息).

Thin: what is kept and the deletion are bot.privacy.rights' (through
bot.frontdesk); the yes/no answers are read by action_answer_question
(actions/answers.py), which deletes only after the resident confirmed.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.answers import WITHDRAW_OPEN, ask
from bot import frontdesk
from bot.dialogue.questions import QUESTION_SLOT, PendingQuestion
from bot.dialogue.yes_no import ERASE_DATA, ERASE_OPEN_TICKETS


def _open_list(kept) -> str:
    return "、".join(f"{t.number}（{t.category_label}）" for t in kept.open_tickets)


def _kept_about(sender_id: str, dispatcher: CollectingDispatcher):
    """What is kept about the resident, or None once they were told there is nothing
    (or that the store cannot answer now)."""
    try:
        kept = frontdesk.my_data(sender_id)
    except frontdesk.StoreUnavailable:
        dispatcher.utter_message(response="utter_ticket_failed")
        return None
    if kept.nothing:
        dispatcher.utter_message(response="utter_my_data_nothing")
        return None
    return kept


class ActionMyData(Action):
    """我的信息: what is kept about the resident."""

    def name(self) -> str:
        return "action_my_data"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        kept = _kept_about(tracker.sender_id, dispatcher)
        if kept is None:
            return []
        dispatcher.utter_message(
            response="utter_my_data",
            open_count=len(kept.open_tickets),
            other_count=kept.other_tickets,
            message_count=kept.messages,
            address=kept.address or "没有",
            notice_count=kept.notices,
        )
        return []


class ActionProposeErasure(Action):
    """删除我的信息: open tickets are asked about first, then the deletion is confirmed."""

    def name(self) -> str:
        return "action_propose_erasure"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        kept = _kept_about(tracker.sender_id, dispatcher)
        if kept is None:
            return [SlotSet(QUESTION_SLOT, None)]
        if kept.open_tickets:
            return ask(dispatcher, PendingQuestion(ERASE_OPEN_TICKETS, label=_open_list(kept)))
        return ask(dispatcher, PendingQuestion(ERASE_DATA, subject=WITHDRAW_OPEN))
