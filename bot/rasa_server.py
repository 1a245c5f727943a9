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

    rasa_patches.install()
    # Rasa logs residents' messages at debug level: no phone or ID number in logs.
    install_log_masking()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_main()


if __name__ == "__main__":
    main()
