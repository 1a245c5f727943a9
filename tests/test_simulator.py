"""bot/simulator.py without HTTP: development wiring, inbox bounds, escaping rules."""

from __future__ import annotations

import re
from dataclasses import replace

import jinja2

from bot import simulator
from bot.settings import load_settings
from bot.web.app import TEMPLATES_DIR
from bot.web.routes import STATIC_DIR


def test_development_wiring_only_without_a_real_secret() -> None:
    base = replace(
        load_settings(),
        web_port=8123,
        wechat_app_secret=None,
        wechat_appid=None,
        wechat_aes_key=None,
        simulator_enabled=True,
    )
    dev = simulator.development_settings(base)
    assert dev is not None
    assert dev.wechat_api_base == "http://127.0.0.1:8123/simulator/wechat-api"
    assert dev.wechat_appid == simulator.DEV_WECHAT_APPID
    assert dev.wechat_app_secret == simulator.DEV_WECHAT_APP_SECRET
    assert dev.wechat_aes_key is None and not dev.wechat_safe_mode

    # A configured appid is kept; a real secret or a switched-off simulator: untouched.
    assert simulator.development_settings(replace(base, wechat_appid="wxreal")).wechat_appid == (
        "wxreal"
    )
    assert simulator.development_settings(replace(base, wechat_app_secret="real")) is None
    assert simulator.development_settings(replace(base, simulator_enabled=False)) is None


def test_simulator_enabled_setting(monkeypatch) -> None:
    monkeypatch.delenv("SIMULATOR_ENABLED", raising=False)
    assert load_settings().simulator_enabled is True
    for value, expected in (("false", False), ("0", False), ("off", False), ("true", True)):
        monkeypatch.setenv("SIMULATOR_ENABLED", value)
        assert load_settings().simulator_enabled is expected


def test_inbox_is_bounded_and_ordered() -> None:
    inbox = simulator.Inbox(max_per_user=3, max_users=2)
    for i in range(5):
        inbox.deliver("oA", "text", f"a{i}")
    assert [m.content for m in inbox.since("oA")] == ["a2", "a3", "a4"]
    last = inbox.since("oA")[-1].id
    assert inbox.since("oA", after=last) == []
    inbox.deliver("oB", "text", "b")
    inbox.deliver("oC", "text", "c")  # oA is the least recently written: dropped
    assert inbox.since("oA") == []
    assert [m.content for m in inbox.since("oC")] == ["c"]


def test_tokens_expire() -> None:
    inbox = simulator.Inbox()
    token = inbox.issue_token(lifetime=-1)
    assert not inbox.token_valid(token)
    assert inbox.token_valid(inbox.issue_token())
    assert not inbox.token_valid(None)


def test_other_message_types_are_shown_as_what_they_are() -> None:
    inbox = simulator.Inbox()
    token = inbox.issue_token()
    answer = simulator.custom_send_answer(
        inbox, token, {"touser": "oA", "msgtype": "image", "image": {"media_id": "M"}}
    )
    assert answer.body["errcode"] == 0
    assert [m.content for m in inbox.since("oA")] == ["[image]"]
    bad = simulator.custom_send_answer(inbox, token, {"touser": "oA", "msgtype": "bogus"})
    assert bad.body["errcode"] == 40008


def test_script_never_parses_text_as_html() -> None:
    """Residents' and the assistant's words reach the page through textContent only."""
    script = (STATIC_DIR / "simulator.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "textContent" in script


def test_template_escapes_directory_names() -> None:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    env.globals["csrf_token"] = lambda: "token"
    evil = '"><script>alert(1)</script>'
    html = env.get_template("simulator.html").render(
        locations=[simulator.DemoLocation(evil, 36.0, 117.0)],
        photo_url="/static/simulator-photo.svg",
        safe_mode=False,
        api_base="http://127.0.0.1:9",
        stand_in=True,
    )
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r'data-label="&#34;&gt;&lt;script&gt;', html)


def test_static_files_exist() -> None:
    for name in ("simulator.js", "simulator.css", "simulator-photo.svg"):
        assert (STATIC_DIR / name).is_file(), name
