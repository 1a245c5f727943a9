"""Rasa's command line with our patches installed first: `python -m bot.rasa_server run ...`.

The launcher starts the Rasa server (and `rasa shell`, `rasa test`) through this
module, so bot.rasa_patches is in place before Rasa loads a model or calls the
action server; everything else is Rasa's own `rasa` command, unchanged.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from bot import rasa_patches
    from bot.privacy.masking import install_log_masking

    args = sys.argv[1:] if argv is None else argv
    # the server (not `rasa run actions`, `rasa shell`, `rasa test`): a turn whose
    # action server call failed is abandoned, not saved half-done
    serving = args[:1] == ["run"] and args[1:2] != ["actions"]
    rasa_patches.install(abort_turn_on_action_failure=serving)
    # Rasa logs residents' messages at debug level: no phone or ID number in logs.
    install_log_masking()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *args]
    rasa_main()


if __name__ == "__main__":
    main()
