"""Worker pages: login, sessions, CSRF, who sees which ticket, the actions."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html import unescape
from itertools import product
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot import accounts
from bot.cli import main as cli_main
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.store.models import Ticket, Worker, utcnow
from bot.tickets import service
from bot.tickets.access import can_see, visible_clause
from bot.web import auth
from bot.web.app import create_app
from tests.fakes import TrackerLog
from tests.web.conftest import (
    ACCOUNTS,
    ADMIN_PASSWORD,
    PASSWORD,
    SECRET,
    WebClient,
    add_ticket,
    csrf_from,
)

HPXC = "和平新村3号楼2单元501"  # grid HPXC-01 (王芳)
HPXC_02 = "和平新村9号楼1单元101"  # grid HPXC-02 (李强)
YY = "裕园3号楼1单元202"  # grid YY-01 (陈静)


def ticket_state(engine, number: str) -> tuple[str, list[str]]:
    with session_scope(engine, readonly=True) as session:
        ticket = service.get_ticket(session, number)
        return ticket.status, [e.type for e in ticket.events]


def worker_id(engine, phone: str) -> int:
    with session_scope(engine, readonly=True) as session:
        return session.execute(select(Worker.id).where(Worker.phone == phone)).scalar_one()


def page_text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


# -- login, sessions -------------------------------------------------------------


async def test_login_sets_a_protected_session_cookie(anon_client: WebClient) -> None:
    response = await anon_client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login")

    page = await anon_client.get("/login")
    assert page.status == 200 and "工作人员登录" in await page.text()

    response = await anon_client.login(ACCOUNTS["worker"].phone, PASSWORD)
    assert response.status == 303 and response.headers["Location"] == "/"
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.getall("Set-Cookie")}
    session_cookie = cookies[auth.SESSION_COOKIE]
    assert "httponly" in session_cookie and "samesite=lax" in session_cookie
    assert "max-age=43200" in session_cookie and "secure" not in session_cookie

    inbox = await anon_client.get("/")
    assert inbox.status == 200 and "王芳" in await inbox.text()


async def test_login_redirects_back_but_only_to_this_site(anon_client: WebClient) -> None:
    response = await anon_client.get("/?status=done", allow_redirects=False)
    assert response.headers["Location"] == "/login?next=/?status%3Ddone"
    token = await anon_client.csrf("/login?next=//evil.example/x")
    response = await anon_client.post(
        "/login?next=//evil.example/x",
        data={"phone": ACCOUNTS["worker"].phone, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("/tickets/20261127-0001", "/tickets/20261127-0001"),
        ("/?status=done", "/?status=done"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("https://evil.example/", "/"),
        ("", "/"),
    ],
)
def test_next_stays_on_this_site(given: str, safe: str) -> None:
    from bot.web.views.auth import _safe_next

    assert _safe_next(given) == safe


async def test_secure_cookies_when_configured(web_settings, web_engine) -> None:
    app = create_app(replace(web_settings, web_cookie_secure=True), engine=web_engine)
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/login")
        assert "secure" in page.headers["Set-Cookie"].lower()


async def test_bad_password_is_refused(anon_client: WebClient) -> None:
    response = await anon_client.login(ACCOUNTS["worker"].phone, "wrong-password")
    assert response.status == 401
    assert "手机号或密码不正确" in await response.text()
    assert auth.SESSION_COOKIE not in response.cookies
    unknown = await anon_client.login("13999999999", PASSWORD)
    assert unknown.status == 401
    assert (await anon_client.get("/", allow_redirects=False)).status == 302


async def test_login_without_csrf_token_is_refused(anon_client: WebClient) -> None:
    await anon_client.get("/login")  # has the CSRF cookie, but sends no token
    response = await anon_client.post(
        "/login",
        data={"phone": ACCOUNTS["worker"].phone, "password": PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 403 and "安全校验失败" in await response.text()
    assert auth.SESSION_COOKIE not in response.cookies


async def test_login_is_throttled_per_phone(anon_client: WebClient, web_app) -> None:
    phone = ACCOUNTS["worker"].phone
    for _ in range(5):
        assert (await anon_client.login(phone, "wrong-password")).status == 401
    # Even the right password is refused now, without being checked.
    refused = await anon_client.login(phone, PASSWORD)
    assert refused.status == 429
    assert "登录失败次数过多" in await refused.text()
    assert auth.SESSION_COOKIE not in refused.cookies
    # Other accounts from the same address still get in.
    other = await anon_client.login(ACCOUNTS["other_worker"].phone, PASSWORD)
    assert other.status == 303

    # After the window the phone may try again.
    throttle = web_app[auth.THROTTLE]
    start = throttle.clock()
    throttle.clock = lambda: start + 15 * 60 + 1
    assert (await anon_client.login(phone, PASSWORD)).status == 303


async def test_login_is_throttled_per_address(anon_client: WebClient) -> None:
    for n in range(20):
        assert (await anon_client.login(f"1370000{n:04d}", "wrong-password")).status == 401
    refused = await anon_client.login(ACCOUNTS["worker"].phone, PASSWORD)
    assert refused.status == 429


async def test_forged_session_cookie_counts_as_logged_out(
    anon_client: WebClient, web_engine
) -> None:
    wang = worker_id(web_engine, ACCOUNTS["worker"].phone)
    far = int((utcnow() + timedelta(hours=1)).timestamp())
    for value in (f"{wang}.{far}.forged", "garbage", f"{wang}.{far}", ""):
        anon_client.session.cookie_jar.update_cookies({auth.SESSION_COOKIE: value})
        response = await anon_client.get("/", allow_redirects=False)
        assert response.status == 302, value
        assert response.headers["Location"].startswith("/login")

    # A real cookie of one worker with another worker's id is no good either.
    with session_scope(web_engine, readonly=True) as session:
        chen = session.execute(
            select(Worker).where(Worker.phone == ACCOUNTS["other_worker"].phone)
        ).scalar_one()
        valid = accounts.session_token(
            SECRET, chen.id, chen.password_hash, utcnow() + timedelta(hours=1)
        )
    tampered = f"{wang}." + valid.split(".", 1)[1]
    anon_client.session.cookie_jar.update_cookies({auth.SESSION_COOKIE: tampered})
    assert (await anon_client.get("/", allow_redirects=False)).status == 302
    anon_client.session.cookie_jar.update_cookies({auth.SESSION_COOKIE: valid})
    assert (await anon_client.get("/", allow_redirects=False)).status == 200


async def test_expired_session_cookie_counts_as_logged_out(
    anon_client: WebClient, web_engine
) -> None:
    with session_scope(web_engine, readonly=True) as session:
        wang = session.execute(
            select(Worker).where(Worker.phone == ACCOUNTS["worker"].phone)
        ).scalar_one()
        expired = accounts.session_token(
            SECRET, wang.id, wang.password_hash, utcnow() - timedelta(seconds=1)
        )
    anon_client.session.cookie_jar.update_cookies({auth.SESSION_COOKIE: expired})
    response = await anon_client.get("/tickets/20260101-0001", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/login?next=/tickets/20260101-0001"


async def test_password_change_and_deactivation_end_sessions(
    worker_client: WebClient, staff_client: WebClient, web_engine
) -> None:
    assert (await worker_client.get("/", allow_redirects=False)).status == 200
    with session_scope(web_engine) as session:
        accounts.set_password(session, ACCOUNTS["worker"].phone, "a-new-password")
        staff = session.execute(
            select(Worker).where(Worker.phone == ACCOUNTS["staff"].phone)
        ).scalar_one()
        staff.active = False
    assert (await worker_client.get("/", allow_redirects=False)).status == 302
    assert (await staff_client.get("/", allow_redirects=False)).status == 302
    assert (await staff_client.login(ACCOUNTS["staff"].phone, PASSWORD)).status == 401


async def test_logout(worker_client: WebClient) -> None:
    response = await worker_client.post_form("/logout")
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert (await worker_client.get("/", allow_redirects=False)).status == 302


async def test_logout_needs_csrf(worker_client: WebClient) -> None:
    response = await worker_client.post_form("/logout", csrf=False)
    assert response.status == 403
    assert (await worker_client.get("/", allow_redirects=False)).status == 200


# -- first admin -------------------------------------------------------------------


@pytest.fixture
def empty_db(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


async def test_first_start_creates_admin_with_printed_password(
    empty_db, web_settings, capsys
) -> None:
    app = create_app(replace(web_settings, admin_password=None), engine=empty_db)
    async with TestClient(TestServer(app)) as client:
        out = capsys.readouterr().out
        match = re.search(r"首次启动：管理员账号 admin 密码 (\S+)", out)
        assert match, out
        browser = WebClient(client)
        assert (await browser.login("admin", match.group(1))).status == 303
        assert "管理员" in await (await browser.get("/")).text()

    # Second start: an admin exists, nothing is created or printed.
    app = create_app(replace(web_settings, admin_password=None), engine=empty_db)
    async with TestClient(TestServer(app)):
        assert "首次启动" not in capsys.readouterr().out
    with session_scope(empty_db, readonly=True) as session:
        assert session.execute(select(func.count(Worker.id))).scalar_one() == 1


async def test_first_start_uses_admin_password(empty_db, web_settings, capsys) -> None:
    async with TestClient(TestServer(create_app(web_settings, engine=empty_db))) as client:
        out = capsys.readouterr().out
        assert "首次启动" in out and ADMIN_PASSWORD not in out
        assert (await WebClient(client).login("admin", ADMIN_PASSWORD)).status == 303


# -- who sees what -----------------------------------------------------------------


async def test_grid_worker_sees_own_grid_only(worker_client: WebClient, web_engine) -> None:
    mine = add_ticket(web_engine, HPXC)
    theirs = add_ticket(web_engine, YY)
    neighbours = add_ticket(web_engine, HPXC_02)

    inbox = await (await worker_client.get("/")).text()
    assert mine in inbox and theirs not in inbox and neighbours not in inbox

    page = await worker_client.get(f"/tickets/{mine}")
    assert page.status == 200 and "暖气不热" in await page.text()

    hidden = await worker_client.get(f"/tickets/{theirs}")
    missing = await worker_client.get("/tickets/20200101-9999")
    assert hidden.status == missing.status == 404
    assert page_text(await hidden.text()) == page_text(await missing.text())

    # Nor can it be changed.
    response = await worker_client.post_form(f"/tickets/{theirs}/accept")
    assert response.status == 404
    assert ticket_state(web_engine, theirs)[0] == "open"


async def test_community_staff_see_their_community(staff_client: WebClient, web_engine) -> None:
    grid_ticket = add_ticket(web_engine, HPXC)
    other_grid = add_ticket(web_engine, HPXC_02)
    community_matter = add_ticket(web_engine, "和平新村", "CERTIFICATE", description="开居住证明")
    escalated = add_ticket(web_engine, "和平新村5号楼1单元301", "NOISE")
    with session_scope(web_engine) as session:
        service.escalate(session, escalated, actor="system:escalation")
    elsewhere = add_ticket(web_engine, YY)

    inbox = await (await staff_client.get("/")).text()
    for number in (grid_ticket, other_grid, community_matter, escalated):
        assert number in inbox
    assert elsewhere not in inbox
    with session_scope(web_engine, readonly=True) as session:
        matter = service.get_ticket(session, community_matter)
        assert matter.level == "community" and matter.grid_id is None
    assert (await staff_client.get(f"/tickets/{community_matter}")).status == 200
    assert (await staff_client.get(f"/tickets/{escalated}")).status == 200
    assert (await staff_client.get(f"/tickets/{elsewhere}")).status == 404


async def test_admin_sees_everything(admin_client: WebClient, web_engine) -> None:
    numbers = [
        add_ticket(web_engine, HPXC),
        add_ticket(web_engine, YY),
        add_ticket(web_engine, "", "SANITATION", description="路边垃圾没人收"),  # nowhere
    ]
    inbox = await (await admin_client.get("/?status=all")).text()
    assert all(n in inbox for n in numbers)
    for number in numbers:
        assert (await admin_client.get(f"/tickets/{number}")).status == 200


def test_list_rule_and_ticket_rule_agree(web_engine) -> None:
    add_ticket(web_engine, HPXC)
    add_ticket(web_engine, HPXC_02)
    add_ticket(web_engine, YY)
    add_ticket(web_engine, "和平新村", "CERTIFICATE")
    add_ticket(web_engine, "裕园", "SUBSIDY")
    add_ticket(web_engine, "")
    moved = add_ticket(web_engine, HPXC)
    with session_scope(web_engine) as session:
        service.transfer(session, moved, "YY-02", actor="test")
        workers = [accounts.CurrentWorker.of(w) for w in session.execute(select(Worker)).scalars()]
        tickets = session.execute(select(Ticket)).scalars().all()
        assert len(workers) >= 10 and len(tickets) == 7
        for worker, ticket in product(workers, tickets):
            listed = session.execute(
                select(Ticket.id).where(Ticket.id == ticket.id, visible_clause(worker))
            ).first()
            assert (listed is not None) == can_see(worker, ticket), (worker, ticket)


# -- CSRF on actions -----------------------------------------------------------------


async def test_action_without_csrf_is_refused_and_changes_nothing(
    worker_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, HPXC)
    before = ticket_state(web_engine, number)
    for action, form in (
        ("accept", {}),
        ("resolve", {"note": "修好了"}),
        ("note", {"note": "去看过"}),
        ("escalate", {}),
        ("transfer", {"grid": "HPXC-02"}),
    ):
        response = await worker_client.post_form(f"/tickets/{number}/{action}", form, csrf=False)
        assert response.status == 403, action
        assert "安全校验失败" in await response.text()
        forged = await worker_client.post(
            f"/tickets/{number}/{action}",
            data={**form, "csrf_token": "not-the-token"},
            allow_redirects=False,
        )
        assert forged.status == 403
    assert ticket_state(web_engine, number) == before


async def test_a_token_of_another_session_is_refused(
    worker_client: WebClient, other_worker_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, HPXC)
    stolen = await other_worker_client.csrf("/")
    response = await worker_client.post(
        f"/tickets/{number}/accept", data={"csrf_token": stolen}, allow_redirects=False
    )
    assert response.status == 403
    assert ticket_state(web_engine, number)[0] == "open"


# -- actions ----------------------------------------------------------------------------


async def test_accept_note_resolve(worker_client: WebClient, web_engine) -> None:
    number = add_ticket(web_engine, HPXC)
    wang = worker_id(web_engine, ACCOUNTS["worker"].phone)
    actor = f"worker:{wang}:王芳"

    response = await worker_client.post_form(f"/tickets/{number}/accept")
    assert response.status == 303
    assert response.headers["Location"] == f"/tickets/{number}?done=accept"
    page = await (await worker_client.get(response.headers["Location"])).text()
    assert "已受理该工单" in page and "已受理" in page

    assert (
        await worker_client.post_form(f"/tickets/{number}/note", {"note": "明天上午上门"})
    ).status == 303
    # A resolution needs a note.
    empty = await worker_client.post_form(f"/tickets/{number}/resolve", {"note": "  "})
    assert empty.status == 400 and "请填写处理结果说明" in await empty.text()
    assert ticket_state(web_engine, number)[0] == "accepted"
    assert (
        await worker_client.post_form(f"/tickets/{number}/resolve", {"note": "阀门已修好"})
    ).status == 303

    with session_scope(web_engine, readonly=True) as session:
        ticket = service.get_ticket(session, number)
        assert ticket.status == "resolved" and ticket.assignee_id == wang
        ours = [(e.type, e.actor, e.note) for e in ticket.events if e.actor == actor]
    assert ours == [
        ("accepted", actor, None),
        ("note", actor, "明天上午上门"),
        ("resolved", actor, "阀门已修好"),
    ]
    page = await (await worker_client.get(f"/tickets/{number}")).text()
    assert "明天上午上门" in page and "阀门已修好" in page and "已处理，待确认" in page


async def test_transfer_to_another_grid(
    worker_client: WebClient, client_factory, web_engine
) -> None:
    number = add_ticket(web_engine, HPXC)
    page = await (await worker_client.get(f"/tickets/{number}")).text()
    assert 'value="HPXC-02"' in page and 'value="YY-03"' in page
    assert 'value="HPXC-01"' not in page  # not to where it already is

    response = await worker_client.post_form(
        f"/tickets/{number}/transfer", {"grid": "HPXC-02", "note": "9号楼归第二网格"}
    )
    # 王芳 no longer sees it: back to the inbox with a note of what happened.
    assert response.status == 303
    assert response.headers["Location"] == f"/?done=transfer&number={number}"
    inbox = await (await worker_client.get(response.headers["Location"])).text()
    assert f"工单{number}：工单已转派" in inbox
    assert (await worker_client.get(f"/tickets/{number}")).status == 404

    with session_scope(web_engine, readonly=True) as session:
        ticket = service.get_ticket(session, number)
        assert ticket.grid.code == "HPXC-02" and ticket.assignee.name == "李强"
        event = ticket.events[-1]
        assert event.type == "transferred" and event.data["to_grid"] == "HPXC-02"
        assert event.note == "9号楼归第二网格" and event.actor.endswith(":王芳")
        assert "转派至和平新村第二网格" in ticket.routing_reason

    unknown = await worker_client.post_form(f"/tickets/{number}/transfer", {"grid": "HPXC-01"})
    assert unknown.status == 404  # not hers any more

    li = await client_factory("staff")
    bad = await li.post_form(f"/tickets/{number}/transfer", {"grid": "NOPE-01"})
    assert bad.status == 400 and "没有启用的网格" in await bad.text()


async def test_escalate_to_the_community(
    worker_client: WebClient, staff_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, HPXC)
    page = await (await worker_client.get(f"/tickets/{number}")).text()
    assert "升级到社区" in page
    response = await worker_client.post_form(
        f"/tickets/{number}/escalate", {"note": "需要居委会协调物业"}
    )
    assert response.status == 303
    with session_scope(web_engine, readonly=True) as session:
        ticket = service.get_ticket(session, number)
        assert ticket.status == "escalated" and ticket.level == "community"
        assert ticket.events[-1].type == "escalated"
        assert ticket.events[-1].note == "需要居委会协调物业"
    staff_page = await (await staff_client.get(f"/tickets/{number}")).text()
    assert "已上报上级" in staff_page and "升级到街道" in staff_page
    assert (await staff_client.post_form(f"/tickets/{number}/accept")).status == 303
    assert ticket_state(web_engine, number)[0] == "accepted"

    # Without a reason the history says who asked, not "overdue".
    quiet = add_ticket(web_engine, HPXC)
    assert (await worker_client.post_form(f"/tickets/{quiet}/escalate")).status == 303
    with session_scope(web_engine, readonly=True) as session:
        assert service.get_ticket(session, quiet).events[-1].note == "王芳提请升级至社区"


async def test_resolving_a_cancelled_ticket_is_explained(
    worker_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, HPXC, sender_id="oResidentX")
    page = await worker_client.get(f"/tickets/{number}")  # open in the worker's phone...
    token = csrf_from(await page.text())
    with session_scope(web_engine) as session:  # ...while the resident withdraws it
        service.cancel_ticket(session, number, "oResidentX", reason="自己修好了")
    response = await worker_client.post(
        f"/tickets/{number}/resolve",
        data={"note": "已处理", "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 409
    html = await response.text()
    assert f"工单{number}当前状态为“已撤销”，不能“办结”" in unescape(html)
    assert "已处理" in html  # the note typed is kept in the form
    status, events = ticket_state(web_engine, number)
    assert status == "cancelled" and events[-1] == "cancelled"


# -- escaping ---------------------------------------------------------------------------


async def test_residents_text_is_escaped(admin_client: WebClient, web_engine) -> None:
    evil = "<script>alert('x')</script>"
    number = add_ticket(
        web_engine,
        HPXC,
        description=f"暖气{evil}",
        original_text=f"原话{evil}<img src=x onerror=alert(1)>",
        photos=(
            "javascript:alert(1)",
            'https://example.org/a.jpg"><script>alert(2)</script>',
            "https://example.org/photo.jpg",
        ),
    )
    await admin_client.post_form(f"/tickets/{number}/note", {"note": f"备注{evil}"})
    for path in ("/", f"/tickets/{number}"):
        html = await (await admin_client.get(path)).text()
        assert "<script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html
    response = await admin_client.get(f"/tickets/{number}")
    # and should anything slip through, the page runs no inline script
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    assert 'href="javascript:' not in html
    assert 'href="https://example.org/photo.jpg"' in html
    assert "javascript:alert(1)" in html  # shown as text, not a link


# -- inbox ordering and SLA ---------------------------------------------------------------


async def test_inbox_orders_by_due_time_with_sla_classes(
    worker_client: WebClient, web_engine
) -> None:
    now = utcnow()
    relaxed = add_ticket(web_engine, HPXC, "FACILITY", now=now)  # 72 h left
    soon = add_ticket(web_engine, HPXC, "HEATING", now=now - timedelta(hours=21))  # 3 h left
    late = add_ticket(web_engine, HPXC, "NOISE", now=now - timedelta(hours=50))  # 2 h over
    done = add_ticket(web_engine, HPXC, "HEATING", now=now - timedelta(hours=30))
    with session_scope(web_engine) as session:
        service.resolve(session, done, actor="test", note="好了")

    html = await (await worker_client.get("/")).text()
    rows = re.findall(r'<li class="ticket-row ([^"]*)">\s*<a href="/tickets/([^"]+)"', html)
    assert rows == [("overdue", late), ("due-soon", soon), ("on-time", relaxed)]
    assert "已超时2小时" in html and "剩余2小时59分" in html

    finished = await (await worker_client.get("/?status=done")).text()
    assert done in finished and late not in finished
    assert re.search(r'<li class="ticket-row ">\s*<a href="/tickets/' + done, finished)


# -- the resident's conversation ---------------------------------------------------------


async def test_ticket_page_shows_the_residents_messages(
    worker_client: WebClient, web_engine, tracker: TrackerLog
) -> None:
    created = utcnow() - timedelta(minutes=10)
    number = add_ticket(web_engine, HPXC, sender_id="oChatty", now=created)
    t0 = created.timestamp()
    messages = [(t0 - 600 + i, f"早先的话{i}") for i in range(12)]
    messages += [(t0 - 30, "<b>暖气</b>一点都不热"), (t0 - 20, "/affirm"), (t0 + 300, "之后的话")]
    for at, text in messages:
        tracker.user(text, sender="oChatty", at=at)
        tracker.bot("机器人回答", sender="oChatty", at=at + 0.5)
    tracker.user("别人的话", sender="oOther", at=t0 - 5)

    html = await (await worker_client.get(f"/tickets/{number}")).text()
    assert "&lt;b&gt;暖气&lt;/b&gt;一点都不热" in html
    assert "之后的话" not in html and "别人的话" not in html and "机器人回答" not in html
    assert "/affirm" not in html
    shown = re.findall(r"早先的话(\d+)", html)
    assert shown == [str(i) for i in range(3, 12)]  # the last ten messages, oldest first


async def test_ticket_page_without_conversation_log(
    worker_client: WebClient, web_engine, web_settings
) -> None:
    number = add_ticket(web_engine, HPXC)
    response = await worker_client.get(f"/tickets/{number}")
    assert response.status == 200 and "登记前居民发来的消息" not in await response.text()
    tracker_file = Path(web_settings.tracker_database_url[len("sqlite:///") :])
    assert not tracker_file.exists()  # looked for, never created


# -- command line ----------------------------------------------------------------------------


def test_workers_command(web_db_url: str, web_engine, capsys) -> None:
    assert cli_main(["--database-url", web_db_url, "workers", "list"]) == 0
    listing = capsys.readouterr().out
    assert "王芳\t13800000001\t网格员\t和平新村社区" not in listing  # grid workers: no community
    assert re.search(r"王芳\t13800000001\t网格员\t-\tHPXC-01", listing)
    assert re.search(r"周敏\t13900000001\t社区工作人员\t和平新村社区", listing)
    assert re.search(r"刘洋\t13800000004\t网格员\t-\tHPXC-04\t未设密码", listing)

    args = ["--database-url", web_db_url, "workers"]
    assert cli_main([*args, "set-password", "13800000004", "--password", "liuyang-pass"]) == 0
    assert "已为刘洋（13800000004）设置密码" in capsys.readouterr().out
    assert cli_main([*args, "set-password", "13800000004", "--password", "short"]) == 2
    assert cli_main([*args, "set-password", "19999999999", "--password", "long-enough"]) == 2
    assert cli_main([*args, "add-admin", "赵主任", "13700000000", "--password", "boss-pass-1"]) == 0
    assert cli_main([*args, "add-admin", "重复", "13700000000", "--password", "boss-pass-1"]) == 2
    capsys.readouterr()

    with session_scope(web_engine, readonly=True) as session:
        assert accounts.authenticate(session, "13800000004", "liuyang-pass").name == "刘洋"
        boss = accounts.authenticate(session, "13700000000", "boss-pass-1")
        assert boss is not None and boss.role == "admin"
        assert accounts.authenticate(session, "13800000004", PASSWORD) is None
