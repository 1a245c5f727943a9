"""Actions that start a resident's report: recognise the category."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.taxonomy import get_taxonomy


class ActionAcknowledgeCategory(Action):
    """Names the category the resident's message was understood as."""

    def name(self) -> str:
        return "action_acknowledge_category"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        category = get_taxonomy().by_intent(intent or "")
        if category is None:
            dispatcher.utter_message(response="utter_ask_what_matter")
            return []
        dispatcher.utter_message(response="utter_ack_category", category_label=category.label)
        return [SlotSet("category", category.code), SlotSet("category_label", category.label)]
