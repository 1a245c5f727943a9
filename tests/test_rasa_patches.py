"""bot.rasa_patches: written for one Rasa release, called by Rasa, installed where the
server starts, and accepting and refusing exactly as Rasa's own check."""

from __future__ import annotations

import subprocess
import sys

import pytest
import rasa
from aiohttp import web
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot import launcher, rasa_patches
from bot.settings import PROJECT_ROOT, load_settings
from tests.fakes import serve_on_loopback


@pytest.fixture(scope="module")
def action() -> RemoteAction:
    assert rasa_patches.install()
    return RemoteAction("action_submit_report", None)


def test_the_patch_was_written_for_the_installed_rasa():
    # A new Rasa release: check that RemoteAction._validate_action_result still does
    # what the patch replaces (and that Rasa still calls it), then update RASA_VERSION.
    assert rasa.__version__ == rasa_patches.RASA_VERSION


async def test_rasa_calls_the_patched_method_for_every_action_response(monkeypatch):
    assert rasa_patches.install()
    calls = []
    patched = RemoteAction._validate_action_result

    def spy(self, result):
        calls.append(result)
        return patched(self, result)

    def unpatched(*args, **kwargs):
        raise AssertionError("Rasa validated the response without the patch")

    monkeypatch.setattr(RemoteAction, "_validate_action_result", spy)
    monkeypatch.setattr("jsonschema.validate", unpatched)
    answer = {"events": [{"event": "slot", "name": "category", "value": None}], "responses": []}

    async def webhook(request: web.Request) -> web.Response:
        return web.json_response(answer)

    async with serve_on_loopback([("POST", "/webhook", webhook)]) as url:
        action = RemoteAction("action_submit_report", EndpointConfig(url + "/webhook"))
        domain = Domain.empty()
        tracker = DialogueStateTracker("resident", domain.slots)
        events = await action.run(
            CollectingOutputChannel(), TemplatedNaturalLanguageGenerator({}), tracker, domain
        )
    assert calls == [answer]
    assert [e.as_dict()["event"] for e in events] == ["slot"]


def test_the_rasa_server_entry_installs_the_patch_before_rasa_runs():
    # A fresh process, as the launcher starts it: Rasa's main must find the patch in place.
    check = (
        "import rasa.__main__ as m\n"
        "from rasa.core.actions.action import RemoteAction\n"
        "m.main = lambda: print(RemoteAction._validate_action_result.__module__)\n"
        "from bot import rasa_server\n"
        "rasa_server.main(['run'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "bot.rasa_patches"
    # and the launcher starts the Rasa server through that entry
    rasa_service = next(
        s for s in launcher.services(load_settings(), PROJECT_ROOT / "m.tar.gz") if s.name == "rasa"
    )
    assert rasa_service.command[1:3] == ["-m", "bot.rasa_server"]


def test_a_valid_response_passes(action):
    result = {
        "events": [{"event": "slot", "name": "category", "value": None}],
        "responses": [{"response": "utter_ticket_opened_grid", "ticket_number": "20261127-0001"}],
    }
    assert action._validate_action_result(result) is True


@pytest.mark.parametrize(
    "result",
    [{"events": "not a list"}, {"events": [{"no_event_key": 1}]}, {"responses": [1, 2]}],
)
def test_an_invalid_response_is_refused_as_before(action, result):
    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        action._validate_action_result(result)


def test_install_is_idempotent():
    rasa_patches.install()
    first = RemoteAction._validate_action_result
    rasa_patches.install()
    assert RemoteAction._validate_action_result is first


def test_another_rasa_release_is_left_as_it_ships(monkeypatch, caplog):
    monkeypatch.setattr(rasa_patches, "_installed", False)
    monkeypatch.setattr(rasa, "__version__", "3.7.0")
    before = RemoteAction._validate_action_result
    assert rasa_patches.install() is False
    assert RemoteAction._validate_action_result is before
    assert "written for Rasa 3.6.21, not 3.7.0" in caplog.text


async def test_a_turn_whose_action_server_failed_is_abandoned(monkeypatch):
    """The server's patch: Rasa would carry on without the action's events and save
    the tracker; the turn is abandoned instead (nothing saved, the channel says busy)."""
    from rasa.core.actions.action import ActionExecutionRejection
    from rasa.core.processor import MessageProcessor

    outcome: dict[str, object] = {}

    async def prediction_loop(self, output_channel, tracker):
        # what Rasa's own loop does with a failing action: log it and continue
        action = RemoteAction("action_submit_report", EndpointConfig(outcome["url"]))
        domain = Domain.empty()
        try:
            await action.run(output_channel, TemplatedNaturalLanguageGenerator({}), tracker, domain)
        except ActionExecutionRejection:
            outcome["rejected"] = True
        except Exception:  # noqa: BLE001 - Rasa's "Bot will continue"
            outcome["swallowed"] = True

    monkeypatch.setattr(MessageProcessor, "_run_prediction_loop", prediction_loop)
    monkeypatch.setattr(RemoteAction, "run", RemoteAction.run)
    for name in ("handle_message", "_handle_message_with_tracker"):  # patched too: restored
        monkeypatch.setattr(MessageProcessor, name, getattr(MessageProcessor, name))
    monkeypatch.setattr(rasa_patches, "_abort_installed", False)
    assert rasa_patches.install(abort_turn_on_action_failure=True)
    tracker = DialogueStateTracker("resident", [])

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": "database down"}, status=500)

    async def rejecting(request: web.Request) -> web.Response:
        return web.json_response({"action_name": "validate_report_form", "error": "x"}, status=400)

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"events": [], "responses": []})

    routes = [("POST", "/broken", broken), ("POST", "/rejecting", rejecting), ("POST", "/ok", fine)]
    async with serve_on_loopback(routes) as url:
        for path in ("/ok", "/rejecting"):
            outcome["url"] = url + path
            await MessageProcessor._run_prediction_loop(None, CollectingOutputChannel(), tracker)
        assert outcome == {"url": url + "/rejecting", "rejected": True}
        for target in (url + "/broken", "http://127.0.0.1:9/webhook"):  # failing, unreachable
            outcome["url"] = target
            with pytest.raises(rasa_patches.ActionServerFailed, match="action_submit_report"):
                await MessageProcessor._run_prediction_loop(
                    None, CollectingOutputChannel(), tracker
                )


async def test_a_failing_tracker_store_fails_the_turn_instead_of_faking_it(monkeypatch):
    """Rasa's FailSafeTrackerStore would read an empty conversation and save into this
    process's memory; with the server's patch the failure reaches the turn."""
    from rasa.core.processor import MessageProcessor
    from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore

    for name in ("retrieve", "retrieve_full_tracker", "save"):
        monkeypatch.setattr(FailSafeTrackerStore, name, getattr(FailSafeTrackerStore, name))
    monkeypatch.setattr(RemoteAction, "run", RemoteAction.run)
    monkeypatch.setattr(
        MessageProcessor, "_run_prediction_loop", MessageProcessor._run_prediction_loop
    )
    for name in ("handle_message", "_handle_message_with_tracker"):  # patched too: restored
        monkeypatch.setattr(MessageProcessor, name, getattr(MessageProcessor, name))
    monkeypatch.setattr(rasa_patches, "_abort_installed", False)
    assert rasa_patches.install(abort_turn_on_action_failure=True)

    class Down(InMemoryTrackerStore):
        async def retrieve(self, sender_id):
            raise ConnectionError("database down")

        async def save(self, tracker):
            raise ConnectionError("database down")

    store = FailSafeTrackerStore(Down(Domain.empty()))
    with pytest.raises(rasa_patches.TrackerStoreFailed, match="database down"):
        await store.retrieve("resident")
    with pytest.raises(rasa_patches.TrackerStoreFailed, match="database down"):
        await store.save(DialogueStateTracker("resident", []))
    assert await store.fallback_tracker_store.retrieve("resident") is None  # nothing faked


def test_the_answer_of_a_message_is_found_by_its_id():
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

    events = [
        UserUttered("暖气不热", message_id="m1"),
        BotUttered("您住在哪个小区？"),
        ActionExecuted("action_listen"),
        UserUttered("是", message_id="m2"),
        ActionExecuted("action_submit_report"),
        BotUttered("已为您登记，编号 20261207-0001", data={"buttons": [{"title": "查询"}]}),
        BotUttered("还有别的吗"),
        UserUttered("谢谢", message_id="m3"),
    ]
    answer = rasa_patches.earlier_answer(events, "m2")
    assert [m["text"] for m in answer] == ["已为您登记，编号 20261207-0001", "还有别的吗"]
    assert answer[0]["buttons"] == [{"title": "查询"}]
    assert rasa_patches.earlier_answer(events, "m3") == []  # in the log, not answered
    assert rasa_patches.earlier_answer(events, "m4") is None
    assert rasa_patches.earlier_answer(events, None) is None


async def test_a_message_already_in_the_conversation_is_answered_again_not_processed(
    monkeypatch,
):
    """A WeChat retry reaching a server after another one saved the turn (and died
    before answering): the same answer, not a second reading of "是"."""
    from rasa.core.channels.channel import UserMessage
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.events import BotUttered, UserUttered

    processed: list[str] = []

    async def handle_with_tracker(self, message, tracker):
        processed.append(message.message_id)
        tracker.update(UserUttered(message.text, message_id=message.message_id))

    async def handle_message(self, message):  # Rasa's: read, log the message, predict
        tracker = self.tracker
        await self._handle_message_with_tracker(message, tracker)
        tracker.update(BotUttered(f"答：{message.text}"))
        await message.output_channel.send_text_message(message.sender_id, f"答：{message.text}")
        return message.output_channel.messages

    monkeypatch.setattr(MessageProcessor, "handle_message", handle_message)
    monkeypatch.setattr(MessageProcessor, "_handle_message_with_tracker", handle_with_tracker)
    for name in ("retrieve", "retrieve_full_tracker", "save"):
        from rasa.core.tracker_store import FailSafeTrackerStore

        monkeypatch.setattr(FailSafeTrackerStore, name, getattr(FailSafeTrackerStore, name))
    monkeypatch.setattr(RemoteAction, "run", RemoteAction.run)
    monkeypatch.setattr(
        MessageProcessor, "_run_prediction_loop", MessageProcessor._run_prediction_loop
    )
    monkeypatch.setattr(rasa_patches, "_abort_installed", False)
    assert rasa_patches.install(abort_turn_on_action_failure=True)

    class Processor:
        tracker = DialogueStateTracker("resident", [])
        handle_message = MessageProcessor.handle_message
        _handle_message_with_tracker = MessageProcessor._handle_message_with_tracker

    processor = Processor()

    async def say(text: str, message_id: str) -> list[str]:
        message = UserMessage(text, CollectingOutputChannel(), "resident", message_id=message_id)
        return [m["text"] for m in await processor.handle_message(message)]

    assert await say("是", "m1") == ["答：是"]
    assert await say("是", "m1") == ["答：是"]  # the retry: the answer again
    assert await say("是", "m2") == ["答：是"]  # the same words, a new message
    assert processed == ["m1", "m2"]
    assert [e.message_id for e in processor.tracker.events if isinstance(e, UserUttered)] == [
        "m1",
        "m2",
    ]
