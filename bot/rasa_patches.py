"""Fixes to Rasa 3.6 internals that cost every turn, installed in the Rasa server.

Rasa validates every action-server response with `jsonschema.validate(result,
schema)`, which checks the (constant) schema itself again on each call: 31 ms of
a turn per custom action on this machine, against 2.8 ms with a validator built
once (benchmarks/README.md, "Tickets and locating"). The replacement validates
against the same schema with the same errors; only the repeated schema check
is gone.

Installed by importing bot.rasa_tracker_store, which the Rasa server loads from
endpoints.yml; `install()` is idempotent.
"""

from __future__ import annotations

from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from jsonschema import ValidationError, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

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
