"""From a resident's report to the worker's phone and back, in headless Chromium.

The full stack runs (Rasa with the trained model, actions, web app with its
notification sender, escalation) on a fresh database. A resident reports cold
heating through the simulator, which speaks WeChat's protocol to the real webhook;
the ticket number shows in the chat and in 我的工单. The grid worker of HPXC-01
(王芳) logs in on a phone-sized window, finds the ticket, resolves it with a note;
the notice reaches the resident through WeChat's customer-service API (here the web
app's stand-in) and shows in the simulator. A fake WeCom group robot on 127.0.0.1
received the new-ticket push naming 王芳.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot import simulator
from bot.settings import PROJECT_ROOT
from bot.store.db import make_engine, session_scope
from bot.store.models import Grid
from tests.browser.conftest import (
    PHONE,
    LoopThread,
    Screenshots,
    log_in_as_admin,
    requires_chromium,
)
from tests.conftest import RasaStack, StackFactory, free_port

pytestmark = [pytest.mark.rasa_server, requires_chromium]

TICKET_NUMBER = re.compile(r"\d{8}-\d{4}")
ROBOT_KEY = "hpxc-01-test-robot"
WORKER_PHONE = "13800000001"  # 王芳, grid worker of HPXC-01 in the demo directory
WORKER_PASSWORD = "wangfang-test-pw"
ADMIN_PASSWORD = "browser-admin-pw-1234"
RESOLUTION = "已联系供热站排气，室温恢复到二十度"
REPLY_TIMEOUT_MS = 45_000  # a first answer may wait for the model to warm up


@dataclass
class FakeWeComRobot:
    """WeCom's group-robot endpoint: records what it is sent, answers ok."""

    received: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, request: web.Request) -> web.Response:
        self.received.append({"key": request.query.get("key"), "body": await request.json()})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self.send)
        return app


@pytest.fixture(scope="module")
def robot() -> Iterator[tuple[FakeWeComRobot, str]]:
    thread = LoopThread()
    fake = FakeWeComRobot()
    try:
        yield fake, thread.serve(fake.app)
    finally:
        thread.close()


@pytest.fixture(scope="module")
def stack(
    rasa_stack_factory: StackFactory, robot: tuple[FakeWeComRobot, str]
) -> Iterator[RasaStack]:
    _fake, robot_url = robot
    web_port = free_port()
    started = rasa_stack_factory(
        "browser",
        web_port=web_port,
        # Customer-service messages go to the web app's stand-in, as `make run` wires
        # it in development (plaintext mode, development credentials).
        wechat_api_base=simulator.api_base(web_port),
        wechat_appid=simulator.DEV_WECHAT_APPID,
        wechat_app_secret=simulator.DEV_WECHAT_APP_SECRET,
        env={
            "WECOM_API_BASE": robot_url,
            "NOTIFY_INTERVAL_SECONDS": "0.5",
            "SIMULATOR_ENABLED": "true",
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
        },
    )
    # Grid HPXC-01 gets a WeCom group robot before anything is reported.
    engine = make_engine(started.database_url)
    with session_scope(engine) as session:
        grid = session.execute(select(Grid).where(Grid.code == "HPXC-01")).scalar_one()
        grid.wecom_webhook_key = ROBOT_KEY
    engine.dispose()
    # 王芳's password, set the way an admin does it.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "--database-url",
            started.database_url,
            "workers",
            "set-password",
            WORKER_PHONE,
            "--password",
            WORKER_PASSWORD,
        ],
        cwd=PROJECT_ROOT,
        env=started.env,
        check=True,
        capture_output=True,
    )
    try:
        yield started
    finally:
        started.stop()


def say(page: Any, text: str, expect_in_reply: str | re.Pattern[str]) -> str:
    """Send `text` from the simulator; wait for an answer containing `expect_in_reply`
    (passive reply or customer-service message); return that answer's text."""
    from playwright.sync_api import expect

    answers = page.locator("#messages .msg.account")
    before = answers.count()
    page.fill("#text", text)
    page.click("#send")
    expect(answers.nth(before)).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    answer = answers.filter(has_text=expect_in_reply).last
    expect(answer).to_be_visible(timeout=REPLY_TIMEOUT_MS)
    return answer.text_content() or ""


def test_resident_reports_worker_resolves_resident_is_told(
    browser: Any,
    stack: RasaStack,
    robot: tuple[FakeWeComRobot, str],
    screenshots: Screenshots,
) -> None:
    from playwright.sync_api import expect

    fake_robot, _url = robot

    # -- the resident, in the simulator ----------------------------------------------
    resident_context = browser.new_context(viewport={"width": 1280, "height": 900})
    resident = screenshots.track("resident", resident_context.new_page())
    # the simulator is a development tool for logged-in admins
    log_in_as_admin(resident, stack.web_url, ADMIN_PASSWORD)
    expect(resident.locator("#openid")).to_have_text(re.compile(r"^oSim"))

    say(resident, "俺家暖气不热好几天了", "您住在哪个小区几号楼几单元")
    say(resident, "和平新村三号楼2单元501", "确认提交吗")
    receipt = say(resident, "是", TICKET_NUMBER)
    number = TICKET_NUMBER.search(receipt).group()  # type: ignore[union-attr]
    assert "王芳" in receipt, receipt

    mine = resident.locator(f"#ticket-list li[data-number='{number}']")
    expect(mine).to_contain_text("供暖供气")
    expect(mine).to_contain_text("待受理")
    expect(mine).to_contain_text("和平新村第一网格")
    expect(mine).to_contain_text("王芳")
    screenshots.take(resident, "1-resident-reported")

    # -- the grid worker, on her phone -----------------------------------------------
    worker_context = browser.new_context(**PHONE)
    worker = screenshots.track("worker", worker_context.new_page())
    worker.goto(stack.web_url + "/login")
    screenshots.take(worker, "2-worker-login")
    worker.fill("input[name=phone]", WORKER_PHONE)
    worker.fill("input[name=password]", WORKER_PASSWORD)
    worker.click("form[action='/login'] button[type=submit]")
    expect(worker).to_have_url(stack.web_url + "/")

    row = worker.locator("li.ticket-row", has_text=number)
    expect(row).to_be_visible()
    expect(row).to_contain_text("供暖供气")
    screenshots.take(worker, "3-worker-inbox")
    # A phone-sized page: nothing wider than the screen.
    assert worker.evaluate("document.documentElement.scrollWidth") <= 390

    row.locator("a").click()
    expect(worker).to_have_url(stack.web_url + f"/tickets/{number}")
    expect(worker.locator("h1")).to_have_text("供暖供气")
    resolve = worker.locator(f"form[action='/tickets/{number}/resolve']")
    resolve.locator("textarea[name=note]").fill(RESOLUTION)
    resolve.locator("button[type=submit]").click()
    expect(worker.locator(".ticket-head .status")).to_have_class(re.compile("status-resolved"))
    screenshots.take(worker, "4-worker-resolved")

    # -- the resident is told, through the customer-service API ----------------------
    notice = resident.locator("#messages .msg.account", has_text="您反映的供暖供气问题已处理")
    expect(notice).to_have_count(1, timeout=30_000)
    expect(notice).to_contain_text(RESOLUTION)
    expect(notice).to_contain_text(number)
    expect(notice.locator(".tag")).to_have_text("客服消息")
    expect(mine).to_contain_text("已处理")
    screenshots.take(resident, "5-resident-notified")

    # -- the grid's WeCom robot heard about the new ticket, naming 王芳 ---------------
    pushes = [p for p in fake_robot.received if number in p["body"]["markdown"]["content"]]
    assert len(pushes) == 1, fake_robot.received
    assert pushes[0]["key"] == ROBOT_KEY
    content = pushes[0]["body"]["markdown"]["content"]
    assert "新工单" in content and "王芳" in content and "<@wangfang>" in content

    worker_context.close()
    resident_context.close()
