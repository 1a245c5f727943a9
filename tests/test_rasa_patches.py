"""The faster action-response validation accepts and refuses exactly as Rasa's."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot import rasa_patches


@pytest.fixture(scope="module")
def action() -> RemoteAction:
    rasa_patches.install()
    return RemoteAction("action_submit_report", None)


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
