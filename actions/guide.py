"""The service guide (办事指南) in the chat: "开居住证明要带啥", "社区几点上班".

The answer comes from the guide of the resident's community (bot.guide.chat):
the community named in the message, else the address of the report in
progress or the last one given. Without one (and with several guides) the
assistant asks which community and answers the question kept in
`guide_question` when the resident names it.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import intent_of, original_text
from bot import frontdesk
from bot.guide import chat

QUESTION_SLOT = "guide_question"
MAX_QUESTION = 500


def community_of(tracker: Tracker, text: str) -> str | None:
    """The resident's community: named in `text`, else the address in the
    conversation, else the one they gave last time; None when unknown."""
    try:
        named = frontdesk.locate_text(text)
        if frontdesk.is_usable(named):
            return named.community
    except frontdesk.StoreUnavailable:
        pass
    located = frontdesk.located_from_slot(tracker.get_slot("located"))
    if located is not None and located.community:
        return located.community
    try:
        known = frontdesk.known_address(tracker.sender_id)
    except frontdesk.StoreUnavailable:
        return None
    return known.community if known is not None else None


class ActionAnswerGuide(Action):
    """Answers how a service is done from the community's guide."""

    def name(self) -> str:
        return "action_answer_guide"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = original_text(tracker).strip()
        question = text
        if intent_of(tracker) == "inform_address":
            # the community asked for: answer the question kept for it
            question = tracker.get_slot(QUESTION_SLOT) or ""
            if not question:
                dispatcher.utter_message(response="utter_ask_what_matter")
                return []
        replies = chat.answer(question, community_of(tracker, text))
        for reply in replies:
            dispatcher.utter_message(response=reply.response, **reply.values)
        asks_community = replies[0].response == "utter_guide_which_community"
        return [SlotSet(QUESTION_SLOT, question[:MAX_QUESTION] if asks_community else None)]
