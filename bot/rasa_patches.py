"""Fixes to Rasa 3.6 internals that cost every turn, installed in the Rasa server.

Rasa validates every action-server response with `jsonschema.validate(result,
schema)` in `RemoteAction._validate_action_result`, which checks the (constant)
schema itself again on each call: 31 ms of a turn per custom action on this
machine, against 2.8 ms with a validator built once (benchmarks/README.md,
"Tickets and locating"). The replacement validates against the same schema with
the same errors; only the repeated schema check is gone.

A second patch, for the server only (`install(abort_turn_on_action_failure=True)`):
when the action server fails during a turn (killed, unreachable, or its database
down), Rasa logs "Bot will continue, but the actions events are lost", carries on
without the action's events and saves that tracker; the resident then reads a
half-answer, or nothing, and a form may be left in a state no action put it in. With
the patch the turn is abandoned instead (`ActionServerFailed`): nothing is saved,
and the WeChat channel answers utter_busy ("系统忙，请稍后再发一次"), so the resident's
next try starts from where the conversation really was. In the same spirit, the
tracker store's failures are not papered over: Rasa's FailSafeTrackerStore would
answer a failed read with an empty conversation and keep a failed write in this
process's memory (so two servers would each hold another version of it); with the
patch the turn fails instead, and the resident reads utter_busy.

A third, for the server too: each message is answered once. A WeChat retry (the same
MsgId) reaching a Rasa server after another one processed and saved its turn, but
died before the answer left (or while the retry waited for the lock), would be read
again as a new message: a repeated "是" after the report's ticket was opened lands
outside the form and the resident reads "好的。还有什么需要帮忙的吗？" instead of the
ticket number. With the patch a message whose id is already in the conversation is
not processed again; the answer the conversation holds for it is sent once more.

Installed by bot.rasa_server, the entry point the launcher starts Rasa with,
before Rasa loads anything; `install()` is idempotent. The patch replaces a
private method of one Rasa release: on any other release it is not installed
(Rasa then runs as it ships, only slower), and tests/test_rasa_patches.py fails
until the patch is checked against the new release and RASA_VERSION updated.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

logger = logging.getLogger(__name__)

# The Rasa release whose RemoteAction._validate_action_result this replaces.
RASA_VERSION = "3.6.21"

_installed = False
_abort_installed = False

# The custom actions that failed in the turn being processed (None: not in a turn).
_failed_actions: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "failed_actions", default=None
)


class MessageAlreadyHandled(Exception):
    """The message's id is in the conversation already: its answer was replayed."""


class ActionServerFailed(Exception):
    """A custom action failed during a turn: the turn is abandoned, nothing saved."""


def installed() -> bool:
    return _installed


def install(abort_turn_on_action_failure: bool = False) -> bool:
    """Install the patch into this process's Rasa; False when Rasa is another release."""
    global _installed
    if _installed:
        if abort_turn_on_action_failure:
            _install_abort()
        return True
    import rasa
    from jsonschema import ValidationError, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    if rasa.__version__ != RASA_VERSION:
        logger.warning(
            "bot.rasa_patches was written for Rasa %s, not %s: not installed",
            RASA_VERSION,
            rasa.__version__,
        )
        return False

    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        try:
            validator.validate(result)
            return True
        except ValidationError as e:
            e.message += (
                ". Failed to validate Action server response from API, "
                "make sure your response from the Action endpoint is valid. "
                f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
            )
            raise e

    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    _installed = True
    if abort_turn_on_action_failure:
        _install_abort()
    return True


def _install_abort() -> None:
    global _abort_installed
    if _abort_installed:
        return
    from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
    from rasa.core.processor import MessageProcessor

    run_action = RemoteAction.run
    prediction_loop = MessageProcessor._run_prediction_loop

    async def run(self: RemoteAction, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run_action(self, *args, **kwargs)
        except ActionExecutionRejection:
            raise  # a form rejecting a slot value is the dialogue, not a failure
        except Exception:
            failed = _failed_actions.get()
            if failed is not None:
                failed.append(self.name())
            raise

    async def _run_prediction_loop(self: MessageProcessor, *args: Any, **kwargs: Any) -> Any:
        failed: list[str] = []
        token = _failed_actions.set(failed)
        try:
            result = await prediction_loop(self, *args, **kwargs)
        finally:
            _failed_actions.reset(token)
        if failed:
            # before handle_message saves the tracker: the turn never happened
            raise ActionServerFailed(f"custom actions failed: {', '.join(failed)}")
        return result

    RemoteAction.run = run  # type: ignore[method-assign]
    MessageProcessor._run_prediction_loop = _run_prediction_loop  # type: ignore[method-assign]
    _no_tracker_store_fallback()
    _answer_each_message_once()
    _abort_installed = True


def earlier_answer(events: Any, message_id: str | None) -> list[dict[str, Any]] | None:
    """The bot messages that answered the user message `message_id` in `events`
    (Rasa events of one conversation); None when that message is not among them."""
    from rasa.shared.core.events import BotUttered, UserUttered

    if not message_id:
        return None
    answer: list[dict[str, Any]] | None = None
    for event in events:
        if isinstance(event, UserUttered):
            if answer is not None:
                break  # the next message: its answer ends here
            if event.message_id == message_id:
                answer = []
        elif answer is not None and isinstance(event, BotUttered):
            answer.append(event.message())
    return answer


def _answer_each_message_once() -> None:
    from rasa.core.channels.channel import CollectingOutputChannel
    from rasa.core.processor import MessageProcessor

    handle_message = MessageProcessor.handle_message
    handle_message_with_tracker = MessageProcessor._handle_message_with_tracker

    async def _handle_message_with_tracker(
        self: MessageProcessor, message: Any, tracker: Any
    ) -> None:
        # Called with the conversation's lock held (Agent.handle_message) and the
        # tracker just read: no other server can be saving this message meanwhile.
        answer = earlier_answer(tracker.events, message.message_id)
        if answer is None:
            return await handle_message_with_tracker(self, message, tracker)
        for bot_message in answer:
            await message.output_channel.send_response(message.sender_id, bot_message)
        raise MessageAlreadyHandled(message.message_id)

    async def _handle_message(self: MessageProcessor, message: Any) -> Any:
        try:
            return await handle_message(self, message)
        except MessageAlreadyHandled:
            logger.info("message %s was answered before: its answer sent again", message.message_id)
            if isinstance(message.output_channel, CollectingOutputChannel):
                return message.output_channel.messages
            return None

    MessageProcessor._handle_message_with_tracker = _handle_message_with_tracker  # type: ignore[method-assign]
    MessageProcessor.handle_message = _handle_message  # type: ignore[method-assign]


class TrackerStoreFailed(Exception):
    """The tracker store failed: the turn fails, no empty or in-memory stand-in."""


def _no_tracker_store_fallback() -> None:
    from rasa.core.tracker_store import FailSafeTrackerStore

    async def retrieve(self: FailSafeTrackerStore, sender_id: str) -> Any:
        try:
            return await self._tracker_store.retrieve(sender_id)
        except Exception as error:
            raise TrackerStoreFailed(f"reading {sender_id}'s conversation: {error}") from error

    async def retrieve_full_tracker(self: FailSafeTrackerStore, sender_id: str) -> Any:
        try:
            return await self._tracker_store.retrieve_full_tracker(sender_id)
        except Exception as error:
            raise TrackerStoreFailed(f"reading {sender_id}'s conversation: {error}") from error

    async def save(self: FailSafeTrackerStore, tracker: Any) -> None:
        try:
            await self._tracker_store.save(tracker)
        except Exception as error:
            raise TrackerStoreFailed(
                f"saving {tracker.sender_id}'s conversation: {error}"
            ) from error

    FailSafeTrackerStore.retrieve = retrieve  # type: ignore[method-assign]
    FailSafeTrackerStore.retrieve_full_tracker = retrieve_full_tracker  # type: ignore[method-assign]
    FailSafeTrackerStore.save = save  # type: ignore[method-assign]
