"""People (accounts, roles, passwords, deactivation) and Open311 API keys."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot import accounts
from bot.accounts import CurrentWorker, PeopleError, authenticate
from bot.apikeys import verify_key
from bot.store.db import session_scope
from bot.store.models import ApiKey, Community, Worker
from tests.web.conftest import ACCOUNTS, PASSWORD, WebClient

SECRET_RE = re.compile(r'<p class="secret-value"><code>([^<]+)</code></p>')


def worker(engine: Engine, phone: str) -> Worker:
    with session_scope(engine, readonly=True) as s:
        w = s.execute(select(Worker).where(Worker.phone == phone)).scalar_one()
        s.expunge(w)
        return w


def community_id(engine: Engine, name: str) -> int:
    with session_scope(engine, readonly=True) as s:
        return s.execute(select(Community.id).where(Community.name == name)).scalar_one()


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def admin_viewer(engine: Engine) -> CurrentWorker:
    return CurrentWorker.of(worker(engine, ACCOUNTS["admin"].phone))


# -- the list ------------------------------------------------------------------------------


async def test_people_list(admin_client: WebClient) -> None:
    response = await admin_client.get("/admin/people")
    assert response.status == 200
    text = text_of(await response.text())
    for account in ACCOUNTS.values():
        assert account.name in text and account.phone in text
    assert "HPXC-01" in text and "社区工作人员" in text and "和平新村社区" in text
    assert "未设密码" in text  # grid workers of the directory without a password


# -- adding people -----------------------------------------------------------------------------


async def test_add_community_staff_who_can_then_log_in(
    admin_client: WebClient, client_factory, web_engine: Engine
) -> None:
    yy = community_id(web_engine, "裕园社区")
    response = await admin_client.post_form(
        "/admin/people",
        {
            "name": "郑华",
            "phone": "13900000009",
            "role": "community_staff",
            "community": str(yy),
            "password": "staff-password-1",
        },
    )
    assert response.status == 200
    html = await response.text()
    assert "已添加社区工作人员郑华" in html and not SECRET_RE.search(html)
    added = worker(web_engine, "13900000009")
    assert (added.role, added.community_id, added.active) == ("community_staff", yy, True)

    client: WebClient = await client_factory()
    assert (await client.login("13900000009", "staff-password-1")).status == 303
    assert (await client.get("/admin", allow_redirects=False)).status == 403


async def test_add_admin_with_a_generated_password_shown_once(
    admin_client: WebClient, client_factory, web_engine: Engine
) -> None:
    response = await admin_client.post_form(
        "/admin/people", {"name": "副管理员", "phone": "admin-2", "role": "admin", "community": ""}
    )
    html = await response.text()
    password = unescape(SECRET_RE.search(html).group(1))
    assert len(password) >= 12
    assert password not in await (await admin_client.get("/admin/people")).text()
    client: WebClient = await client_factory()
    assert (await client.login("admin-2", password)).status == 303
    assert (await client.get("/admin")).status == 200


@pytest.mark.parametrize(
    "form,message",
    [
        ({"name": "", "phone": "13900000010", "role": "admin"}, "请填写姓名"),
        ({"name": "甲", "phone": "1", "role": "admin"}, "请填写手机号"),
        ({"name": "甲", "phone": "13900000010", "role": "grid_worker"}, "网格员请通过网格目录导入"),
        ({"name": "甲", "phone": "13900000010", "role": "community_staff"}, "需要选择所属社区"),
        (
            {"name": "甲", "phone": "13900000010", "role": "community_staff", "community": "999"},
            "所选社区不存在",
        ),
        ({"name": "甲", "phone": ACCOUNTS["worker"].phone, "role": "admin"}, "已属于王芳"),
        ({"name": "甲", "phone": "13900000010", "role": "admin", "password": "short"}, "至少"),
    ],
)
async def test_add_refuses_bad_input(
    form: dict[str, str], message: str, admin_client: WebClient, web_engine: Engine
) -> None:
    with session_scope(web_engine, readonly=True) as s:
        count = len(s.execute(select(Worker.id)).all())
    response = await admin_client.post_form("/admin/people", form)
    assert response.status == 400
    assert message in text_of(await response.text())
    with session_scope(web_engine, readonly=True) as s:
        assert len(s.execute(select(Worker.id)).all()) == count


# -- one person ----------------------------------------------------------------------------------


async def test_change_role_and_community(admin_client: WebClient, web_engine: Engine) -> None:
    staff = worker(web_engine, ACCOUNTS["staff"].phone)
    yy = community_id(web_engine, "裕园社区")
    page = await admin_client.get(f"/admin/people/{staff.id}")
    assert page.status == 200 and "周敏" in await page.text()

    response = await admin_client.post_form(
        f"/admin/people/{staff.id}/role", {"role": "community_staff", "community": str(yy)}
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/admin/people/{staff.id}?done=role"
    assert worker(web_engine, staff.phone).community_id == yy

    response = await admin_client.post_form(
        f"/admin/people/{staff.id}/role", {"role": "admin", "community": str(yy)}
    )
    changed = worker(web_engine, staff.phone)
    assert (changed.role, changed.community_id) == ("admin", None)

    response = await admin_client.post_form(
        f"/admin/people/{staff.id}/role", {"role": "community_staff", "community": ""}
    )
    assert response.status == 409 and "需要选择所属社区" in await response.text()
    assert worker(web_engine, staff.phone).role == "admin"


async def test_an_admin_cannot_demote_or_deactivate_themselves(
    admin_client: WebClient, web_engine: Engine
) -> None:
    me = worker(web_engine, ACCOUNTS["admin"].phone)
    response = await admin_client.post_form(f"/admin/people/{me.id}/role", {"role": "grid_worker"})
    assert response.status == 409 and "不能取消自己的管理员权限" in await response.text()
    response = await admin_client.post_form(f"/admin/people/{me.id}/active", {"active": "0"})
    assert response.status == 409 and "不能停用自己的账号" in await response.text()
    assert worker(web_engine, me.phone).role == "admin" and worker(web_engine, me.phone).active


def test_the_last_active_admin_stays(web_engine: Engine) -> None:
    admin = admin_viewer(web_engine)
    with session_scope(web_engine) as s:
        other = accounts.add_person(s, "副管理员", "admin-2", "admin", password=PASSWORD)
    acting = CurrentWorker(id=other.id, name="副管理员", phone="admin-2", role="admin")
    with session_scope(web_engine) as s:
        accounts.set_active(s, acting, admin.id, False)  # one admin remains: fine
    with session_scope(web_engine) as s, pytest.raises(PeopleError, match="最后一位"):
        accounts.change_role(s, admin, other.id, "grid_worker", None)
    with session_scope(web_engine) as s, pytest.raises(PeopleError, match="最后一位"):
        accounts.set_active(s, admin, other.id, False)
    with session_scope(web_engine) as s:
        accounts.set_active(s, acting, admin.id, True)
        accounts.set_active(s, admin, other.id, False)  # two admins again: fine


async def test_reset_password_ends_sessions(
    admin_client: WebClient, worker_client: WebClient, client_factory, web_engine: Engine
) -> None:
    target = worker(web_engine, ACCOUNTS["worker"].phone)
    assert (await worker_client.get("/", allow_redirects=False)).status == 200

    response = await admin_client.post_form(
        f"/admin/people/{target.id}/password", {"password": "new-password-123"}
    )
    assert response.status == 303
    assert (await worker_client.get("/", allow_redirects=False)).status == 302  # logged out
    client: WebClient = await client_factory()
    assert (await client.login(target.phone, PASSWORD)).status == 401
    assert (await client.login(target.phone, "new-password-123")).status == 303

    response = await admin_client.post_form(
        f"/admin/people/{target.id}/password", {"generate": "1"}
    )
    assert response.status == 200
    generated = unescape(SECRET_RE.search(await response.text()).group(1))
    assert (await client.get("/", allow_redirects=False)).status == 302
    assert (await client.login(target.phone, generated)).status == 303

    response = await admin_client.post_form(
        f"/admin/people/{target.id}/password", {"password": "short"}
    )
    assert response.status == 409 and "至少" in await response.text()
    response = await admin_client.post_form(f"/admin/people/{target.id}/password", {})
    assert response.status == 400


async def test_a_grid_worker_from_the_directory_gets_a_first_password(
    admin_client: WebClient, client_factory, web_engine: Engine
) -> None:
    li = worker(web_engine, "13800000002")  # 李强, HPXC-02, no password yet
    assert li.password_hash is None
    response = await admin_client.post_form(f"/admin/people/{li.id}/password", {"generate": "1"})
    password = unescape(SECRET_RE.search(await response.text()).group(1))
    client: WebClient = await client_factory()
    assert (await client.login("13800000002", password)).status == 303


async def test_deactivate_and_reactivate(
    admin_client: WebClient, worker_client: WebClient, client_factory, web_engine: Engine
) -> None:
    target = worker(web_engine, ACCOUNTS["worker"].phone)
    page = await admin_client.get(f"/admin/people/{target.id}")
    assert "仍是网格 HPXC-01 的网格员" in text_of(await page.text())

    response = await admin_client.post_form(f"/admin/people/{target.id}/active", {"active": "0"})
    assert response.status == 303
    assert not worker(web_engine, target.phone).active
    # the open session ends at once, and logging in again fails
    assert (await worker_client.get("/", allow_redirects=False)).status == 302
    client: WebClient = await client_factory()
    assert (await client.login(target.phone, PASSWORD)).status == 401
    with session_scope(web_engine, readonly=True) as s:
        assert authenticate(s, target.phone, PASSWORD) is None

    response = await admin_client.post_form(f"/admin/people/{target.id}/active", {"active": "1"})
    assert response.status == 303
    assert (await client.login(target.phone, PASSWORD)).status == 303


async def test_unknown_person_is_404(admin_client: WebClient) -> None:
    assert (await admin_client.get("/admin/people/99999")).status == 404
    response = await admin_client.post_form("/admin/people/99999/active", {"active": "0"})
    assert response.status == 404


# -- API keys ------------------------------------------------------------------------------------


async def test_api_keys_create_list_revoke(admin_client: WebClient, web_engine: Engine) -> None:
    response = await admin_client.post_form("/admin/keys", {"name": "12345热线<script>"})
    assert response.status == 200
    html = await response.text()
    assert "<script>" not in html
    token = unescape(SECRET_RE.search(html).group(1))
    prefix = token.split(".")[0]
    with session_scope(web_engine) as s:
        assert verify_key(s, token) is not None  # marks it used
        stored = s.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one()
        assert stored.created_by == "管理员" and token not in (stored.key_hash, stored.prefix)

    listing = await admin_client.get("/admin/keys")
    html = await listing.text()
    assert prefix in html and token not in html  # shown once only
    assert "从未使用" not in html and "有效" in html

    response = await admin_client.post_form(f"/admin/keys/{prefix}/revoke")
    assert response.status == 303
    assert response.headers["Location"] == "/admin/keys?done=revoked"
    with session_scope(web_engine) as s:
        assert verify_key(s, token) is None
    html = await (await admin_client.get("/admin/keys?done=revoked")).text()
    assert "已吊销" in html and "密钥已吊销" in html

    assert (await admin_client.post_form("/admin/keys/00000000/revoke")).status == 404
    assert (await admin_client.post_form("/admin/keys/NOT-HEX/revoke")).status == 404
    empty = await admin_client.post_form("/admin/keys", {"name": "  "})
    assert empty.status == 400
