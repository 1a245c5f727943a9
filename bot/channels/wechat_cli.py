"""Registers `python -m bot wechat-send` and `wechat-menu` with bot.cli.

bot.cli imports this module when "bot.channels.wechat_cli" is listed in its
COMMAND_MODULES; wechat-send lives in bot.channels.wechat_sender, the menu in
bot.channels.wechat_menu.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bot.channels import wechat_menu
from bot.channels.wechat_api import WeChatApiClient, WeChatApiError
from bot.channels.wechat_sender import configure_parser
from bot.cli import command
from bot.settings import get_settings


@command("wechat-send", "post a message to the WeChat webhook as WeChat's server does")
def _wechat_send(parser: argparse.ArgumentParser) -> None:
    configure_parser(parser)


@command("wechat-menu", "create the Official Account's menu (报事 / 我的工单 / 办事指南)")
def _wechat_menu(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", type=Path, help="menu file (default: WECHAT_MENU)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the menu's JSON, do not call WeChat"
    )
    parser.set_defaults(handler=_wechat_menu_run)


def _wechat_menu_run(args: argparse.Namespace) -> int:
    settings = get_settings()
    path = args.file or settings.wechat_menu_path
    try:
        body = wechat_menu.menu_body(wechat_menu.load_menu(path), settings)
    except wechat_menu.MenuError as error:
        print(f"菜单文件有问题（{path}）：", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    client = WeChatApiClient.for_deployment(settings)
    if not client.configured:
        print("需要 WECHAT_APPID 和 WECHAT_APP_SECRET 才能创建菜单。", file=sys.stderr)
        return 2

    async def create() -> None:
        try:
            await wechat_menu.create_menu(client, body)
        finally:
            await client.close()

    try:
        asyncio.run(create())
    except WeChatApiError as error:
        print(f"微信拒绝了菜单：{error}", file=sys.stderr)
        return 1
    names = " / ".join(b["name"] for b in body["button"])
    print(f"已创建菜单：{names}")
    return 0
