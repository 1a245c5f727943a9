"""The Official Account's menu: read from a file an admin can edit
(`data/wechat_menu.yml`, WECHAT_MENU), created through WeChat's menu API at
WECHAT_API_BASE (`python -m bot wechat-menu`), and what a click means.

A `click` button makes WeChat post a CLICK event with the button's key; the
channel gives the assistant the button's `says` text instead (`click_texts`),
so a click is understood exactly like a resident writing it. A `view` button
opens a page of the web app (its path joined to WEB_BASE_URL).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.channels.wechat_api import WeChatApiClient, WeChatApiError
from bot.settings import Settings

MAX_BUTTONS = 3  # WeChat: at most 3 top-level buttons
MAX_NAME_BYTES = 16  # 4 Chinese characters
MAX_KEY_BYTES = 128
KEY_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class MenuError(ValueError):
    """The menu file has problems (all of them listed)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Button:
    name: str
    type: str  # click | view
    key: str | None = None
    says: str | None = None
    path: str | None = None


def load_menu(path: Path) -> list[Button]:
    """The buttons of a menu file, or MenuError listing every problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MenuError([f"{path}: {error}"]) from error
    raw = data.get("buttons") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise MenuError(["buttons: a list of buttons is required"])
    problems: list[str] = []
    if len(raw) > MAX_BUTTONS:
        problems.append(f"buttons: at most {MAX_BUTTONS}, found {len(raw)}")
    buttons: list[Button] = []
    keys: set[str] = set()
    for index, item in enumerate(raw, 1):
        where = f"button {index}"
        if not isinstance(item, dict):
            problems.append(f"{where}: not a mapping")
            continue
        name = str(item.get("name") or "").strip()
        kind = item.get("type")
        if not name or len(name.encode("utf-8")) > MAX_NAME_BYTES:
            problems.append(f"{where}: name must be 1-{MAX_NAME_BYTES} bytes")
        if kind == "click":
            key, says = str(item.get("key") or ""), str(item.get("says") or "").strip()
            if not KEY_RE.match(key):
                problems.append(f"{where}: key must be letters, digits or _")
            elif key in keys:
                problems.append(f"{where}: key {key} used twice")
            keys.add(key)
            if not says:
                problems.append(f"{where}: says (what the click means) is required")
            buttons.append(Button(name, "click", key=key, says=says))
        elif kind == "view":
            page = str(item.get("path") or "")
            if not page.startswith("/") or page.startswith("//"):
                problems.append(f"{where}: path must be a path of the web app (/me)")
            buttons.append(Button(name, "view", path=page))
        else:
            problems.append(f"{where}: type must be click or view")
    if problems:
        raise MenuError(problems)
    return buttons


def menu_body(buttons: list[Button], settings: Settings) -> dict[str, Any]:
    """The JSON body of WeChat's menu/create call."""
    out = []
    for button in buttons:
        if button.type == "click":
            out.append({"type": "click", "name": button.name, "key": button.key})
        else:
            url = settings.public_web_url + (button.path or "/")
            out.append({"type": "view", "name": button.name, "url": url})
    return {"button": out}


def click_texts(path: Path) -> dict[str, str]:
    """Button key -> what the click means; empty when the file is missing or broken
    (the channel then treats clicks as unsupported input, never crashes)."""
    try:
        return {b.key: b.says for b in load_menu(path) if b.type == "click" and b.key and b.says}
    except MenuError:
        return {}


async def create_menu(client: WeChatApiClient, body: dict[str, Any]) -> None:
    """POST the menu to WeChat (WeChatApiError when it refuses)."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    answer = await client.post_json("/cgi-bin/menu/create", data)
    if answer.get("errcode"):
        raise WeChatApiError(
            f"menu refused: {answer.get('errcode')} {answer.get('errmsg')}",
            errcode=int(answer["errcode"]),
        )
