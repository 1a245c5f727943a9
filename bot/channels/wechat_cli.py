"""Registers `python -m bot wechat-send` with bot.cli.

bot.cli imports this module when "bot.channels.wechat_cli" is listed in its
COMMAND_MODULES; the command itself lives in bot.channels.wechat_sender.
"""

from __future__ import annotations

import argparse

from bot.channels.wechat_sender import configure_parser
from bot.cli import command


@command("wechat-send", "post a message to the WeChat webhook as WeChat's server does")
def _wechat_send(parser: argparse.ArgumentParser) -> None:
    configure_parser(parser)
