"""The review pages over HTTP: admins only, the inbox, decisions, export, insights."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from bot.review.export import nlu_examples
from bot.review.text import text_hash
from bot.store.db import session_scope
from bot.store.models import ReviewDecision, utcnow
from bot.tickets import service
from tests.fakes import TrackerLog
from tests.web.conftest import WebClient, add_ticket

ROUTES = [
    ("GET", "/admin/review"),
    ("GET", "/admin/review?status=all&sort=margin&page=2"),
    ("GET", "/admin/insights"),
    ("POST", "/admin/review/decide"),
    ("POST", "/admin/review/undo"),
    ("POST", "/admin/review/export"),
]


def page_text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def decisions(engine) -> dict[str, tuple[str, str | None]]:
    with session_scope(engine, readonly=True) as session:
        return {
            d.text: (d.action, d.intent) for d in session.execute(select(ReviewDecision)).scalars()
        }


async def post(client: WebClient, path: str, pairs: list[tuple[str, str]]):
    """POST a form with repeated fields (checkboxes), with the page's CSRF token."""
    token = await client.csrf("/")
    return await client.post(path, data=[*pairs, ("csrf_token", token)], allow_redirects=False)


# -- access --------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", ROUTES)
async def test_logged_out_visitors_go_to_the_login(anon_client: WebClient, method, path) -> None:
    response = await anon_client.request(method, path, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("who", ["worker", "staff"])
async def test_other_roles_get_403(client_factory, who, method, path, web_engine) -> None:
    client = await client_factory(who)
    if method == "GET":
        response = await client.get(path, allow_redirects=False)
        assert response.status == 403
        assert "没有访问此页面的权限" in await response.text()
    else:
        with_token = await client.post_form(path, {"one": f"{'0' * 16}:dismiss"})
        without = await client.post_form(path, {"one": f"{'0' * 16}:dismiss"}, csrf=False)
        assert (with_token.status, without.status) == (403, 403)
    assert decisions(web_engine) == {}


# -- the inbox ---------------------------------------------------------------------------


@pytest.fixture
def logged(web_engine, tracker: TrackerLog) -> str:
    """Messages in the log (not copied yet: the page copies them), one ticket a worker
    gave another category. Returns that ticket's number."""
    now = utcnow()
    tracker.user(
        "楼下的狗天天晚上叫", "report_noise", 0.61, "report_pet", 0.35, at=now.timestamp() - 900
    )
    tracker.user(
        "3号楼楼道灯不亮",
        "report_facility",
        0.42,
        "report_noise",
        0.40,
        at=now.timestamp() - 800,
        sender="oB",
    )
    tracker.user(
        "5号楼 楼道灯不亮！",
        "report_facility",
        0.52,
        "report_noise",
        0.30,
        at=now.timestamp() - 700,
        sender="oC",
    )
    tracker.user("<script>alert(1)</script>", "greet", 0.2, at=now.timestamp() - 600)
    tracker.user("/share_photo", "share_photo", 1.0, at=now.timestamp() - 500)
    number = add_ticket(
        web_engine,
        "和平新村3号楼2单元501",
        "NOISE",
        original_text="楼下的狗天天晚上叫",
        now=now - timedelta(seconds=880),
    )
    with session_scope(web_engine) as session:
        service.recategorise(session, number, "PETS", "worker:1:王芳", reason="狗叫")
    return number


async def test_the_inbox_shows_groups_tickets_and_suggestions(
    admin_client: WebClient, logged: str
) -> None:
    response = await admin_client.get("/admin/review")
    assert response.status == 200
    html = await response.text()
    text = page_text(html)
    assert "待审核 3 组 · 4 条消息" in text
    assert "×2" in text  # the two lamp messages are one group
    assert "楼下的狗天天晚上叫" in text and "/share_photo" not in text
    assert f'href="/tickets/{logged}"' in html
    assert "建议标注 文明养犬 report_pet" in text
    assert "类别：噪音扰民→文明养犬" in text
    # escaped, and no inline script at all (the page's CSP forbids it)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert '<script src="/static/review.js" defer></script>' in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    # lowest confidence first
    assert text.index("alert(1)") < text.index("楼道灯不亮") < text.index("楼下的狗")

    filtered = page_text(await (await admin_client.get("/admin/review?intent=report_noise")).text())
    assert "楼下的狗" in filtered and "楼道灯" not in filtered
    js = await admin_client.get("/static/review.js")
    assert js.status == 200 and "requestSubmit" in await js.text()


async def test_review_from_the_page(admin_client: WebClient, web_engine, logged: str) -> None:
    await admin_client.get("/admin/review")  # copies the log
    back = "sort=margin&intent=report_facility"
    dog, lamp = text_hash("楼下的狗天天晚上叫"), text_hash("3号楼楼道灯不亮")

    # a row's own button: take the worker's suggestion
    response = await post(
        admin_client, "/admin/review/decide", [("one", f"{dog}:suggested"), ("back", back)]
    )
    assert response.status == 303
    target = urlsplit(response.headers["Location"])
    assert target.path == "/admin/review"
    assert parse_qs(target.query) == {
        "sort": ["margin"],
        "intent": ["report_facility"],
        "done": ["suggested"],
        "groups": ["1"],
        "messages": ["1"],
        "skipped": ["0"],
    }
    shown = page_text(await (await admin_client.get(response.headers["Location"])).text())
    assert "已采纳建议 1 组（1 条消息）" in shown
    assert decisions(web_engine)["楼下的狗天天晚上叫"] == ("relabel", "report_pet")

    # bulk: the selected groups, relabelled
    script = text_hash("<script>alert(1)</script>")
    response = await post(
        admin_client,
        "/admin/review/decide",
        [("group", lamp), ("group", script), ("action", "relabel"), ("label", "report_facility")],
    )
    assert response.status == 303
    assert decisions(web_engine)["5号楼 楼道灯不亮！"] == ("relabel", "report_facility")
    inbox = page_text(await (await admin_client.get("/admin/review")).text())
    assert "没有待审核的消息" in inbox

    # relabel needs a label; unknown actions are refused
    refused = await post(admin_client, "/admin/review/decide", [("one", f"{lamp}:relabel")])
    assert refused.status == 400
    refused = await post(admin_client, "/admin/review/decide", [("one", f"{lamp}:explode")])
    assert refused.status == 400

    # the reviewed view, and undo
    reviewed = page_text(await (await admin_client.get("/admin/review?status=reviewed")).text())
    assert "已审核：改标 → 文明养犬 report_pet" in reviewed
    response = await post(
        admin_client, "/admin/review/undo", [("one", f"{lamp}:undo"), ("back", "status=reviewed")]
    )
    assert response.status == 303 and "done=undo&groups=1" in response.headers["Location"]
    assert "楼道灯不亮" in page_text(await (await admin_client.get("/admin/review")).text())

    # a hostile `back` cannot send the admin elsewhere
    response = await post(
        admin_client,
        "/admin/review/decide",
        [("one", f"{lamp}:dismiss"), ("back", "//evil.example/x&sort=newest")],
    )
    assert response.headers["Location"].startswith("/admin/review?sort=newest&done=dismiss")


async def test_export_from_the_page(
    admin_client: WebClient, web_engine, logged: str, nlu_dir: Path
) -> None:
    await admin_client.get("/admin/review")
    await post(
        admin_client, "/admin/review/decide", [("one", f"{text_hash('3号楼楼道灯不亮')}:confirm")]
    )
    response = await post(admin_client, "/admin/review/export", [])
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/review?exported=1&total=1&added=1")
    assert nlu_examples(nlu_dir / "reviewed.yml") == [("report_facility", "5号楼 楼道灯不亮！")]
    shown = page_text(await (await admin_client.get(response.headers["Location"])).text())
    assert "已导出：reviewed.yml 现有 1 条例句，新增 1 条" in shown
    response = await post(admin_client, "/admin/review/export", [("from", "insights")])
    assert response.headers["Location"].startswith("/admin/insights?exported=1&total=1&added=0")


async def test_insights_link_to_the_messages(admin_client: WebClient, logged: str) -> None:
    response = await admin_client.get("/admin/insights")
    assert response.status == 200
    html = await response.text()
    text = page_text(html)
    assert "例句太少的意图" in text and "最易混淆的意图" in text
    # the worker's change: noise -> pets, with the link to those messages
    assert (
        'href="/admin/review?status=all&amp;intent=report_noise&amp;pair=report_pet&amp;sort=margin"'
        in html
    )
    assert 'href="/admin/review?intent=report_heating"' in html
    linked = await admin_client.get(
        "/admin/review?status=all&intent=report_noise&pair=report_pet&sort=margin"
    )
    assert "楼下的狗天天晚上叫" in page_text(await linked.text())
