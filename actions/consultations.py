"""Residents answering a consultation (协商议事) in the chat: "投票1", "我选方案二"."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import original_text
from bot.consultations import chat


class ActionAnswerConsultation(Action):
    """Records the resident's one voice in their grid's or building's consultation."""

    def name(self) -> str:
        return "action_answer_consultation"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            outcome = chat.answer(tracker.sender_id, original_text(tracker))
        except chat.StoreUnavailable:
            dispatcher.utter_message(response="utter_consultation_failed")
            return []
        dispatcher.utter_message(
            response=f"utter_consultation_{outcome.kind}",
            question=outcome.question,
            choice=outcome.choice,
            options=outcome.options,
        )
        return []
