"""Bulk review from the keyboard (static/review.js), in headless Chromium."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from bot.store.db import session_scope
from bot.store.models import ReviewDecision
from bot.web.app import create_app
from tests.browser.conftest import PHONE, LoopThread, Screenshots, requires_chromium
from tests.fakes import TrackerLog
from tests.web.conftest import ADMIN_PASSWORD

pytestmark = requires_chromium


def decided(engine) -> dict[str, tuple[str, str | None]]:
    with session_scope(engine, readonly=True) as session:
        return {
            d.text: (d.action, d.intent) for d in session.execute(select(ReviewDecision)).scalars()
        }


def test_review_without_the_mouse(
    browser: Any,
    loop_thread: LoopThread,
    screenshots: Screenshots,
    web_settings,
    web_engine,
    tracker: TrackerLog,
) -> None:
    from playwright.sync_api import expect

    # lowest confidence first: this is the order of the inbox
    tracker.user("明天下雨吗", "greet", 0.21)
    tracker.user("楼道堆满了纸箱子", "report_sanitation", 0.32)
    tracker.user("好的谢谢啦", "thank", 0.43)
    tracker.user("都几点了楼上还在砸墙", "report_noise", 0.54)
    tracker.user("在吗在吗", "greet", 0.65)
    base = loop_thread.serve(lambda: create_app(web_settings, engine=web_engine))

    context = browser.new_context(**PHONE)
    page = screenshots.track("review", context.new_page())
    page.goto(f"{base}/login?next=/admin/review")
    page.fill("input[name=phone]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/admin/review")

    def after(action: str) -> None:
        """Wait for the page the action leads back to, with its shortcuts working."""
        expect(page).to_have_url(re.compile(f"done={action}"))
        expect(page.locator("#review-form[data-keys=ready]")).to_have_count(1)

    expect(page.locator("#review-form[data-keys=ready]")).to_have_count(1)
    screenshots.take(page, "inbox")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # fits a phone

    # o: the current (first) group is out of scope
    page.keyboard.press("o")
    after("out_of_scope")
    assert decided(web_engine) == {"明天下雨吗": ("out_of_scope", "out_of_scope")}

    # x, j, x, then d: both selected groups are dismissed at once
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(page.locator("li.group.selected")).to_have_count(2)
    page.keyboard.press("d")
    after("dismiss")
    assert decided(web_engine)["楼道堆满了纸箱子"] == ("dismiss", None)
    assert decided(web_engine)["好的谢谢啦"] == ("dismiss", None)

    # r: choose an intent for the current group, Enter relabels it
    page.keyboard.press("r")
    chooser = page.locator("li.group.current select[data-role=label]")
    expect(chooser).to_be_focused()
    chooser.select_option("dispute_neighbour")
    page.keyboard.press("Enter")
    after("relabel")
    assert decided(web_engine)["都几点了楼上还在砸墙"] == ("relabel", "dispute_neighbour")

    # c: confirm the last one; the inbox is empty
    page.keyboard.press("c")
    after("confirm")
    assert decided(web_engine)["在吗在吗"] == ("confirm", "greet")
    expect(page.locator("main")).to_contain_text("没有待审核的消息")
    screenshots.take(page, "done")
    context.close()
