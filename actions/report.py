"""A resident's report: from the first message to the ticket number.

The flow: a category message -> `action_start_report` (acknowledge, keep the
message as the description, find the address in the message or remember it)
-> `report_form` asks only what is missing (description, address, a yes to
the summary) -> `action_submit_report` opens the ticket.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    channel_of,
    confidence_of,
    intent_of,
    message_id,
    original_text,
    shared_location,
    wechat_metadata,
)
from bot import frontdesk
from bot.channels.wechat_api import MediaError
from bot.dialogue.questions import QUESTION_SLOT, retry_submit_question
from bot.dialogue.yes_no import CONFIRM_REPORT, KNOWN_ADDRESS, Answer, interpret
from bot.guide import chat as guide_chat
from bot.routing.locator import Located
from bot.taxonomy import HANDOFF, MEDIATION_COMMITTEE, RESIDENTS_COUNCIL, get_taxonomy
from bot.tickets import photos

# Slots of one report, cleared when a new one starts or one is done.
REPORT_SLOTS = (
    "category",
    "category_label",
    "description",
    "address",
    "located",
    "known_address",
    "report_confirmed",
    QUESTION_SLOT,
)
# Messages that interrupt a form instead of answering its question: rules
# answer them and return to the form.
INTERRUPTIONS = {
    "bot_challenge",
    "check_ticket",
    "cancel_ticket",
    "request_human",
    "greet",
    "goodbye",
    "thank",
    "share_photo",
    "voice_unrecognised",
    "unsupported_message",
}
HANDLER_INFO = {
    MEDIATION_COMMITTEE: "utter_mediation_info",
    RESIDENTS_COUNCIL: "utter_proposal_info",
}
ADDRESS_ATTEMPTS = 3  # the first answer and two more tries, then the office takes over
MAX_DESCRIPTION = 2000


def clear_report() -> list[EventType]:
    return [SlotSet(slot, None) for slot in REPORT_SLOTS] + [
        SlotSet("address_attempts", 0.0),
        SlotSet("photos", None),
    ]


def _acknowledge(
    dispatcher: CollectingDispatcher, category: Any, domain: DomainDict, community: str | None
) -> None:
    if category.code == HANDOFF.code:
        return
    dispatcher.utter_message(response="utter_ack_category", category_label=category.label)
    # who takes it on (taxonomy.yml's handled_by) has a word of its own
    info = HANDLER_INFO.get(category.handled_by)
    if info is not None:
        dispatcher.utter_message(response=info)
    # a service: what to bring, from the community's guide when there is one
    offer = (
        guide_chat.request_offer(category.code, community) if category.kind == "service" else None
    )
    if offer is not None:
        dispatcher.utter_message(response=offer.response, **offer.values)
        return
    checklist = f"utter_checklist_{category.code}"
    if checklist in domain.get("responses", {}):
        dispatcher.utter_message(response=checklist)


class ActionStartReport(Action):
    """Starts a report (or a call-back request) from the resident's message."""

    def name(self) -> str:
        return "action_start_report"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        category = get_taxonomy().by_intent(intent_of(tracker) or "")
        if category is None:
            dispatcher.utter_message(response="utter_ask_what_matter")
            return []
        text = original_text(tracker).strip()
        events = [e for e in clear_report() if e["name"] != "photos"]
        events += [SlotSet("category", category.code), SlotSet("category_label", category.label)]
        found, named = self._address_events(tracker, text)
        events += found
        _acknowledge(dispatcher, category, domain, _community(events) or named)

        if category.code == HANDOFF.code or not frontdesk.needs_more_detail(text, category):
            events.append(SlotSet("description", text[:MAX_DESCRIPTION] or category.label))
        return events

    @staticmethod
    def _address_events(tracker: Tracker, text: str) -> tuple[list[EventType], str | None]:
        """The address in the message, else the one known to confirm; and the
        community the message names ("裕园的 帮我开个证明"), for the guide."""
        named = None
        try:
            in_message = frontdesk.locate_text(text)
            if frontdesk.is_usable(in_message) and in_message.building is not None:
                return [
                    SlotSet("address", frontdesk.address_label(in_message)),
                    SlotSet("located", frontdesk.located_to_slot(in_message)),
                ], in_message.community
            named = in_message.community if frontdesk.is_usable(in_message) else None
            known = _recent_location(tracker) or frontdesk.known_address(tracker.sender_id)
        except frontdesk.StoreUnavailable:
            known = None  # ask for the address; the ticket itself will retry
        if known is not None and frontdesk.is_usable(known):
            return [
                SlotSet("known_address", frontdesk.address_label(known)),
                SlotSet("located", frontdesk.located_to_slot(known)),
            ], named
        return [], named


def _community(events: list[EventType]) -> str | None:
    """The community of the address found for the report, if any."""
    located = next((e["value"] for e in reversed(events) if e.get("name") == "located"), None)
    return located.get("community") if isinstance(located, dict) else None


def _answer(tracker: Tracker, question: str) -> Answer:
    """The latest message read as the answer to the form's yes/no `question`."""
    return interpret(original_text(tracker), question, intent_of(tracker), confidence_of(tracker))


def _recent_location(tracker: Tracker) -> Located | None:
    """A location the resident shared just before ("就在这儿" + location)."""
    located = frontdesk.located_from_slot(tracker.get_slot("located"))
    if located is not None and located.lat is not None and frontdesk.is_usable(located):
        return located
    return None


class ActionAskAddress(Action):
    """Asks where: "还是…吗？" for a known resident, an example after a miss."""

    def name(self) -> str:
        return "action_ask_address"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if tracker.get_slot("known_address"):
            # also after an unclear answer to it: the same question again
            dispatcher.utter_message(
                response="utter_ask_address_known", known_address=tracker.get_slot("known_address")
            )
        elif (tracker.get_slot("address_attempts") or 0) > 0:
            dispatcher.utter_message(response="utter_address_not_understood")
        else:
            dispatcher.utter_message(response="utter_ask_address")
        return []


class ValidateReportForm(FormValidationAction):
    def name(self) -> str:
        return "validate_report_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # "find me a person" needs only to know whose grid it is
        if tracker.get_slot("category") == HANDOFF.code:
            return ["address"]
        return domain_slots

    def extract_address(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Any answer to "where?" is a candidate; `validate_address` locates it.

        (rasa_sdk keeps only required slots from extraction, and the answer
        also sets `located`, `known_address` and `address_attempts`.)
        """
        if tracker.get_slot("requested_slot") != "address":
            return {}
        intent = intent_of(tracker)
        if tracker.get_slot("known_address"):
            # "还是…吗？" is a yes/no question: its answer words count first
            if _answer(tracker, KNOWN_ADDRESS) is not Answer.UNCLEAR:
                return {"address": original_text(tracker) or "?"}
        if intent in INTERRUPTIONS:
            return {}
        if intent == "deny" and not tracker.get_slot("known_address"):
            # "算了 不用了" to "where?": not an address but dropping the report
            # (the rule for a no during the form takes over)
            return {}
        return {"address": original_text(tracker) or intent or "?"}

    def validate_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "address":
            return {}  # set by action_start_report, already located
        try:
            return self._locate_answer(dispatcher, tracker, intent_of(tracker))
        except frontdesk.StoreUnavailable:
            # The directory is out of reach (the database down): say so honestly; the
            # form asks the same question again, and the answer is not counted as a miss.
            dispatcher.utter_message(response="utter_busy")
            return {"address": None}

    def _locate_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, intent: str | None
    ) -> dict[str, Any]:
        point = shared_location(tracker)
        if point is not None:
            located = frontdesk.locate_point(*point)
        else:
            located = frontdesk.locate_text(original_text(tracker))
        known = tracker.get_slot("known_address")
        # "不是 俺搬到5号楼了": a new address wins over the yes/no it comes with
        new_address = frontdesk.is_usable(located) and (
            point is not None or not known or located.building is not None
        )
        if known and not new_address:
            answer = _answer(tracker, KNOWN_ADDRESS)
            if answer is Answer.YES:
                return {"address": known}
            if answer is Answer.NO:
                return {"address": None, "known_address": None, "located": None}
        if new_address:
            return {
                "address": frontdesk.address_label(located),
                "located": frontdesk.located_to_slot(located),
                "known_address": None,
            }

        attempts = (tracker.get_slot("address_attempts") or 0) + 1
        if attempts >= ADDRESS_ATTEMPTS:
            # Hand over: the office calls back and finds out where it is.
            dispatcher.utter_message(response="utter_address_handover")
            unresolved = Located(address_text=original_text(tracker)[:200] or None)
            return {
                "address": "地址待社区核实",
                "located": frontdesk.located_to_slot(unresolved),
                "address_attempts": float(attempts),
            }
        # an unclear answer to "还是…吗？" gets that question again
        return {"address": None, "address_attempts": float(attempts)}

    def extract_report_confirmed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """The answer to the summary ("确认提交吗？"), read as a yes/no in context.

        Neither yes nor no: the summary is asked again (the slot stays empty),
        unless the message is an interruption its own rule answers first.
        """
        if tracker.get_slot("requested_slot") != "report_confirmed":
            return {}
        answer = _answer(tracker, CONFIRM_REPORT)
        if answer is Answer.YES:
            return {"report_confirmed": True}
        if answer is Answer.NO:
            return {"report_confirmed": False}
        if intent_of(tracker) in INTERRUPTIONS:
            return {}
        dispatcher.utter_message(response="utter_answer_yes_or_no")
        return {"report_confirmed": None}

    def validate_description(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        return {"description": text[:MAX_DESCRIPTION] or None}


def submit(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Open the ticket for the report in the slots and tell the resident."""
    category = get_taxonomy().by_code(tracker.get_slot("category") or "")
    if category is None:
        dispatcher.utter_message(response="utter_ask_what_matter")
        return clear_report()
    located = frontdesk.located_from_slot(tracker.get_slot("located"))
    try:
        receipt = frontdesk.submit_report(
            sender_id=tracker.sender_id,
            channel=channel_of(tracker),
            message_id=message_id(tracker),
            report_key=_report_key(tracker),
            category_code=category.code,
            description=tracker.get_slot("description") or category.label,
            original_text=_first_message_text(tracker),
            located=located,
            photos=tracker.get_slot("photos") or [],
        )
    except frontdesk.StoreUnavailable:
        dispatcher.utter_message(response="utter_ticket_failed")
        # "是" again submits (action_answer_question reads it)
        return [SlotSet(QUESTION_SLOT, retry_submit_question().to_slot())]

    handoff = category.code == HANDOFF.code
    if receipt.handled_by_worker:
        dispatcher.utter_message(
            response="utter_handoff_grid" if handoff else "utter_ticket_opened_grid",
            ticket_number=receipt.ticket_number,
            category_label=receipt.category_label,
            grid_name=receipt.grid_name,
            worker_name=receipt.worker_name,
            worker_phone=receipt.worker_phone,
            due_text=receipt.due_text,
        )
    else:
        dispatcher.utter_message(
            response="utter_handoff_office" if handoff else "utter_ticket_opened_office",
            ticket_number=receipt.ticket_number,
            category_label=receipt.category_label,
            office_name=receipt.office_name,
            office_phone=receipt.office_phone,
            due_text=receipt.due_text,
        )
    if receipt.neighbours:
        dispatcher.utter_message(
            response="utter_neighbours_reported_too", neighbours=receipt.neighbours
        )
    return clear_report()


def _first_message_text(tracker: Tracker) -> str | None:
    """The resident's own words that started this report (kept on the ticket):
    the user message right before the latest `action_start_report`."""
    seen_start = False
    for event in reversed(tracker.events):
        if event.get("event") == "action" and event.get("name") == "action_start_report":
            seen_start = True
        elif seen_start and event.get("event") == "user":
            data = event.get("parse_data") or {}
            return data.get("original_text") or event.get("text")
    return original_text(tracker) or None


def _report_key(tracker: Tracker) -> str | None:
    """The id of the message that started this report: the same whichever later
    message confirms it, so a confirmation repeated after a lost turn (a crash, the
    database down: the conversation was not saved and asks again) opens nothing new."""
    seen_start = False
    for event in reversed(tracker.events):
        if event.get("event") == "action" and event.get("name") == "action_start_report":
            seen_start = True
        elif seen_start and event.get("event") == "user":
            key = event.get("message_id")
            return f"report:{key}" if key else None
        elif event.get("event") == "session_started" and not seen_start:
            # The report began before this session (a long conversation's session is
            # closed at a length bound, bot.rasa_tracker_store, carrying the report
            # over): the session's start is as fixed as the report's first message.
            stamp = event.get("timestamp")
            return f"report:session-{stamp}" if stamp is not None else None
    return None


class ActionSubmitReport(Action):
    """After the form: open the ticket on a yes, drop the report on a no."""

    def name(self) -> str:
        return "action_submit_report"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        is_handoff = tracker.get_slot("category") == HANDOFF.code
        if not is_handoff and tracker.get_slot("report_confirmed") is not True:
            dispatcher.utter_message(response="utter_report_discarded")
            return clear_report()
        return submit(dispatcher, tracker)


class ActionAttachPhoto(Action):
    """A resident's picture: downloaded from WeChat now (its media expire), checked
    and stored; it goes with the report in progress, else with a ticket opened in
    the last hours, else with the next report."""

    def name(self) -> str:
        return "action_attach_photo"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        media_id = wechat_metadata(tracker).get("media_id")
        if not media_id:
            dispatcher.utter_message(response="utter_photo_failed")
            return []
        try:
            stored = await photos.fetch_wechat_photo(str(media_id))
        except photos.PhotoRejected as rejected:
            if rejected.reason == "too_large":
                dispatcher.utter_message(
                    response="utter_photo_too_large", max_size=photos.max_size_label()
                )
            else:
                dispatcher.utter_message(response="utter_photo_not_image")
            return []
        except MediaError:
            dispatcher.utter_message(response="utter_photo_failed")
            return []

        if not tracker.get_slot("category"):
            try:
                number = frontdesk.attach_to_recent_ticket(tracker.sender_id, stored)
            except frontdesk.StoreUnavailable:
                number = None
            if number is not None:
                dispatcher.utter_message(
                    response="utter_photo_attached_ticket", ticket_number=number
                )
                return []
        dispatcher.utter_message(response="utter_photo_attached")
        kept = [p for p in tracker.get_slot("photos") or [] if isinstance(p, dict)]
        if all(p.get("key") != stored.key for p in kept):
            kept.append(stored.to_slot())
        return [SlotSet("photos", kept[-photos.MAX_PHOTOS_PER_REPORT :])]


class ActionShareLocation(Action):
    """A location outside a report: remember it, and offer it for the next one."""

    def name(self) -> str:
        return "action_share_location"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        point = shared_location(tracker)
        if point is None:
            dispatcher.utter_message(response="utter_location_unknown")
            return []
        try:
            frontdesk.remember_location(tracker.sender_id, point[0], point[1], channel_of(tracker))
            located = frontdesk.locate_point(*point)
        except (frontdesk.StoreUnavailable, ValueError):
            dispatcher.utter_message(response="utter_location_unknown")
            return []
        if not frontdesk.is_usable(located):
            dispatcher.utter_message(response="utter_location_unknown")
            return []
        label = frontdesk.address_label(located)
        dispatcher.utter_message(response="utter_location_received", address=label)
        return [
            SlotSet("known_address", label),
            SlotSet("located", frontdesk.located_to_slot(located)),
        ]
