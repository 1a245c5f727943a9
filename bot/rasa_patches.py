"""Fixes to Rasa 3.6 internals that cost every turn, installed in the Rasa server.

Rasa validates every action-server response with `jsonschema.validate(result,
schema)` in `RemoteAction._validate_action_result`, which checks the (constant)
schema itself again on each call: 31 ms of a turn per custom action on this
machine, against 2.8 ms with a validator built once (benchmarks/README.md,
"Tickets and locating"). The replacement validates against the same schema with
the same errors; only the repeated schema check is gone.

Installed by bot.rasa_server, the entry point the launcher starts Rasa with,
before Rasa loads anything; `install()` is idempotent. The patch replaces a
private method of one Rasa release: on any other release it is not installed
(Rasa then runs as it ships, only slower), and tests/test_rasa_patches.py fails
until the patch is checked against the new release and RASA_VERSION updated.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

# The Rasa release whose RemoteAction._validate_action_result this replaces.
RASA_VERSION = "3.6.21"

_installed = False


def installed() -> bool:
    return _installed


def install() -> bool:
    """Install the patch into this process's Rasa; False when Rasa is another release."""
    global _installed
    if _installed:
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
    return True
