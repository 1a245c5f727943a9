"""The Official Account's menu: the file, the API call (fake WeChat API), the CLI, clicks."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.channels import wechat_menu
from bot.channels.wechat import WeChatConfig, rasa_text_for
from bot.channels.wechat_api import WeChatApiClient
from bot.channels.wechat_protocol import parse_message
from bot.channels.wechat_sender import build_incoming_xml
from bot.settings import PROJECT_ROOT, load_settings
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi

MENU = PROJECT_ROOT / "data" / "wechat_menu.yml"
PUBLIC = "https://nb.example.org"


def test_the_menu_file_has_the_three_buttons() -> None:
    buttons = wechat_menu.load_menu(MENU)
    assert [b.name for b in buttons] == ["报事", "我的工单", "办事指南"]
    settings = replace(load_settings(), web_base_url=PUBLIC)
    body = wechat_menu.menu_body(buttons, settings)
    assert body["button"][1] == {"type": "view", "name": "我的工单", "url": f"{PUBLIC}/me"}
    assert body["button"][0]["type"] == "click" and body["button"][0]["key"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("buttons: []", "list of buttons"),
        ("- not a mapping", "list of buttons"),
        ("buttons: [{name: 报事, type: click, key: 'a b', says: x}]", "key must be"),
        ("buttons: [{name: 报事, type: click, key: K}]", "says"),
        ("buttons: [{name: 我的工单和更多, type: view, path: /me}]", "name must be"),
        ("buttons: [{name: 外链, type: view, path: 'https://evil.example'}]", "path must be"),
        ("buttons: [{name: 外链, type: view, path: '//evil.example'}]", "path must be"),
        ("buttons: [{name: 报事, type: miniprogram}]", "type must be"),
        ("buttons: [" + ", ".join(["{name: a, type: view, path: /me}"] * 4) + "]", "at most 3"),
        (
            "buttons: [{name: a, type: click, key: K, says: x}, {name: b, type: click, key: K, "
            "says: y}]",
            "used twice",
        ),
        ("buttons: [unclosed", "menu.yml"),
    ],
)
def test_broken_menu_files_are_refused_with_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "menu.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(wechat_menu.MenuError) as raised:
        wechat_menu.load_menu(path)
    assert problem in str(raised.value)
    assert wechat_menu.click_texts(path) == {}  # the channel carries on without


async def test_create_menu_posts_it_with_the_access_token(fake_wechat_api: FakeWeChatApi) -> None:
    client = WeChatApiClient(APPID, APP_SECRET, fake_wechat_api.url)
    body = wechat_menu.menu_body(
        wechat_menu.load_menu(MENU), replace(load_settings(), web_base_url=PUBLIC)
    )
    try:
        await wechat_menu.create_menu(client, body)
    finally:
        await client.close()
    assert fake_wechat_api.menus == [body]
    assert fake_wechat_api.menus[0]["button"][1]["name"] == "我的工单"


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "wechat-menu",
        *args,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_creates_the_menu_through_the_configured_api(
    fake_wechat_api: FakeWeChatApi, tmp_path: Path
) -> None:
    env = {
        "WECHAT_API_BASE": fake_wechat_api.url,
        "WECHAT_APPID": APPID,
        "WECHAT_APP_SECRET": APP_SECRET,
        "WEB_BASE_URL": PUBLIC,
    }
    code, out, err = await _cli(env=env)
    assert code == 0, err
    assert "报事 / 我的工单 / 办事指南" in out
    assert fake_wechat_api.menus[0]["button"][1]["url"] == f"{PUBLIC}/me"

    broken = tmp_path / "menu.yml"
    broken.write_text("buttons: [{name: 报事, type: click}]", encoding="utf-8")
    code, _out, err = await _cli("--file", str(broken), env=env)
    assert code == 2 and "key must be" in err
    assert len(fake_wechat_api.menus) == 1  # nothing sent

    code, _out, err = await _cli(env={**env, "WECHAT_APP_SECRET": "wrong"})
    assert code != 0
    assert len(fake_wechat_api.menus) == 1


def _click(key: str) -> Any:
    return parse_message(build_incoming_xml(user="o1", event="CLICK", event_key=key))


def test_a_menu_click_is_read_as_the_button_says() -> None:
    clicks = WeChatConfig.from_settings(load_settings()).menu_clicks
    assert clicks["MENU_REPORT"] == "我要反映问题"
    assert rasa_text_for(_click("MENU_REPORT"), menu_clicks=clicks) == "我要反映问题"
    assert rasa_text_for(_click("MENU_GUIDE"), menu_clicks=clicks) == "办事指南"
    assert rasa_text_for(_click("UNKNOWN"), menu_clicks=clicks) == "/unsupported_message"
    # a `says` starting with "/" cannot trigger an intent with chosen entities
    assert rasa_text_for(_click("K"), menu_clicks={"K": "/greet"}) == "／greet"
