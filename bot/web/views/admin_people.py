"""Admin console: people (workers, community staff, admins) and Open311 API keys.

Grid workers come from the grid directory (imported on the directory page);
here admins add community staff and other admins, change roles and
communities, set passwords and deactivate accounts. A deactivated account can
no longer log in, and its open sessions end at once (bot.web.auth checks
`active` on every request); a new password ends the old sessions too.

Guard rails: an admin cannot demote or deactivate themselves, and the last
active admin cannot be demoted or deactivated (nobody could get back in).

The first half is plain functions on a Session (testable without HTTP), the
handlers follow.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import apikeys
from bot.store.models import Community, Grid, Worker, utcnow
from bot.web import auth
from bot.web.auth import ROLE_LABELS, CurrentWorker, WorkerRow
from bot.web.db import run_db
from bot.web.views.admin import admin_only, render

ADDABLE_ROLES = ("community_staff", "admin")
ROLES = ("grid_worker", "community_staff", "admin")
MAX_NAME = 100
PHONE_RE = re.compile(r"^[0-9A-Za-z+\-_.]{3,50}$")
GENERATED_PASSWORD_BYTES = 9  # 12 characters, 72 bits


class PeopleError(ValueError):
    """The admin's input is not acceptable (a Chinese message; nothing changed)."""


def generate_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _check_password(password: str) -> None:
    try:
        auth.check_new_password(password)
    except ValueError as error:
        raise PeopleError(str(error)) from None


def _community_id(session: Session, role: str, raw: str | int | None) -> int | None:
    """The community of a role: required for community staff, none for admins."""
    if role == "admin":
        return None
    text = str(raw or "").strip()
    if not text:
        if role == "community_staff":
            raise PeopleError("社区工作人员需要选择所属社区。")
        return None
    if not text.isdigit():
        raise PeopleError("所选社区无效。")
    community = session.get(Community, int(text))
    if community is None:
        raise PeopleError("所选社区不存在。")
    if role == "community_staff" and not community.active:
        raise PeopleError(f"{community.name}已停用，不能再分配工作人员。")
    return community.id


def communities(session: Session) -> list[tuple[int, str]]:
    return [
        (cid, name)
        for cid, name in session.execute(
            select(Community.id, Community.name)
            .where(Community.active.is_(True))
            .order_by(Community.name)
        )
    ]


@dataclass(frozen=True)
class NewPerson:
    id: int
    name: str
    phone: str
    role: str
    password: str | None  # generated: shown once


def add_person(
    session: Session,
    name: str,
    phone: str,
    role: str,
    community: str | int | None = None,
    password: str = "",
) -> NewPerson:
    """Add community staff or an admin; an empty password is generated."""
    name, phone = (name or "").strip(), (phone or "").strip()
    if not name or len(name) > MAX_NAME:
        raise PeopleError(f"请填写姓名（最多{MAX_NAME}字）。")
    if not PHONE_RE.match(phone):
        raise PeopleError("请填写手机号（登录账号；3-50位数字或字母）。")
    if role not in ADDABLE_ROLES:
        raise PeopleError("只能在此添加社区工作人员或管理员；网格员请通过网格目录导入。")
    community_id = _community_id(session, role, community)
    existing = session.execute(select(Worker).where(Worker.phone == phone)).scalar_one_or_none()
    if existing is not None:
        role_label = ROLE_LABELS.get(existing.role, existing.role)
        raise PeopleError(f"手机号{phone}已属于{existing.name}（{role_label}）。")
    generated = None
    if not password:
        password = generated = generate_password()
    _check_password(password)
    worker = Worker(
        name=name,
        phone=phone,
        role=role,
        community_id=community_id,
        active=True,
        password_hash=auth.hash_password(password),
    )
    session.add(worker)
    session.flush()
    return NewPerson(worker.id, name, phone, role, generated)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    phone: str | None
    role: str
    role_label: str
    community_id: int | None
    community: str | None
    grids: list[tuple[str, str, bool]]  # code, name, active
    active: bool
    has_password: bool

    @property
    def active_grids(self) -> list[str]:
        return [code for code, _name, active in self.grids if active]


def get_person(session: Session, worker_id: int) -> Person | None:
    worker = session.get(Worker, worker_id)
    if worker is None:
        return None
    community = session.get(Community, worker.community_id) if worker.community_id else None
    grids = [
        (code, name, bool(active))
        for code, name, active in session.execute(
            select(Grid.code, Grid.name, Grid.active)
            .where(Grid.worker_id == worker.id)
            .order_by(Grid.code)
        )
    ]
    return Person(
        id=worker.id,
        name=worker.name,
        phone=worker.phone,
        role=worker.role,
        role_label=ROLE_LABELS.get(worker.role, worker.role),
        community_id=worker.community_id,
        community=community.name if community else None,
        grids=grids,
        active=bool(worker.active),
        has_password=bool(worker.password_hash),
    )


def _worker(session: Session, worker_id: int) -> Worker:
    worker = session.get(Worker, worker_id)
    if worker is None:
        raise LookupError(worker_id)
    return worker


def _other_active_admins(session: Session, worker_id: int) -> int:
    return session.execute(
        select(func.count(Worker.id)).where(
            Worker.role == "admin", Worker.active.is_(True), Worker.id != worker_id
        )
    ).scalar_one()


def change_role(
    session: Session, acting: CurrentWorker, worker_id: int, role: str, community: str | None
) -> Worker:
    """Set role and community. LookupError: no such worker; PeopleError: refused."""
    if role not in ROLES:
        raise PeopleError("请选择有效的角色。")
    worker = _worker(session, worker_id)
    if worker.role == "admin" and role != "admin":
        if worker.id == acting.id:
            raise PeopleError("不能取消自己的管理员权限（请让另一位管理员操作）。")
        if worker.active and _other_active_admins(session, worker.id) == 0:
            raise PeopleError("这是最后一位启用中的管理员，不能取消其管理员权限。")
    worker.community_id = _community_id(session, role, community)
    worker.role = role
    worker.updated_at = utcnow()
    session.flush()
    return worker


def reset_password(session: Session, worker_id: int, password: str = "") -> str | None:
    """Set a new password (ends the worker's sessions); an empty one is
    generated and returned (to be shown once)."""
    worker = _worker(session, worker_id)
    generated = None
    if not password:
        password = generated = generate_password()
    _check_password(password)
    worker.password_hash = auth.hash_password(password)
    worker.updated_at = utcnow()
    session.flush()
    return generated


def set_active(session: Session, acting: CurrentWorker, worker_id: int, active: bool) -> Worker:
    """Deactivate (can no longer log in; sessions end) or reactivate."""
    worker = _worker(session, worker_id)
    if not active:
        if worker.id == acting.id:
            raise PeopleError("不能停用自己的账号。")
        if worker.role == "admin" and _other_active_admins(session, worker.id) == 0:
            raise PeopleError("这是最后一位启用中的管理员，不能停用。")
    worker.active = active
    worker.updated_at = utcnow()
    session.flush()
    return worker


# -- handlers: people ----------------------------------------------------------------------

DONE_MESSAGES = {
    "role": "角色和所属社区已更新。",
    "deactivated": "账号已停用：不能再登录，已登录的会话也已失效。",
    "activated": "账号已重新启用。",
    "password": "密码已更新，该账号已登录的会话均已失效。",
    "revoked": "密钥已吊销，使用它的系统将无法再提交。",
}


async def _people_page(
    request: web.Request,
    *,
    error: str = "",
    message: str = "",
    created: NewPerson | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    def load(session: Session) -> tuple[list[WorkerRow], list[tuple[int, str]]]:
        return auth.list_workers(session), communities(session)

    workers, choices = await run_db(request.app, load, readonly=True)
    return render(
        request,
        "admin/people.html",
        {
            "workers": workers,
            "communities": choices,
            "role_labels": ROLE_LABELS,
            "addable_roles": ADDABLE_ROLES,
            "error": error,
            "message": message,
            "created": created,
            "form": form or {},
        },
        status=status,
    )


@admin_only
async def people_page(request: web.Request) -> web.StreamResponse:
    return await _people_page(request)


@admin_only
async def people_add(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(form.get(k, ""))[:200] for k in ("name", "phone", "role", "community")}
    password = str(form.get("password", ""))[:200]
    try:
        created = await run_db(
            request.app,
            lambda s: add_person(
                s,
                values["name"],
                values["phone"],
                values["role"],
                values["community"],
                password,
            ),
        )
    except PeopleError as error:
        return await _people_page(request, error=str(error), form=values, status=400)
    label = ROLE_LABELS.get(created.role, created.role)
    return await _people_page(
        request, message=f"已添加{label}{created.name}（账号{created.phone}）。", created=created
    )


def _worker_id(request: web.Request) -> int | None:
    raw = request.match_info.get("id", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _not_found(request: web.Request) -> web.Response:
    return auth.render_error(request, 404, "没有这个人员。")


async def _person_page(
    request: web.Request,
    worker_id: int,
    *,
    error: str = "",
    message: str = "",
    new_password: str | None = None,
    status: int = 200,
) -> web.Response:
    def load(session: Session) -> tuple[Person | None, list[tuple[int, str]]]:
        return get_person(session, worker_id), communities(session)

    person, choices = await run_db(request.app, load, readonly=True)
    if person is None:
        return _not_found(request)
    return render(
        request,
        "admin/person.html",
        {
            "p": person,
            "communities": choices,
            "roles": ROLES,
            "role_labels": ROLE_LABELS,
            "error": error,
            "message": message,
            "new_password": new_password,
            "is_me": person.id == request["worker"].id,
        },
        status=status,
    )


@admin_only
async def person_page(request: web.Request) -> web.StreamResponse:
    worker_id = _worker_id(request)
    if worker_id is None:
        return _not_found(request)
    message = DONE_MESSAGES.get(request.query.get("done", ""), "")
    return await _person_page(request, worker_id, message=message)


async def _person_action(request: web.Request, work: Any, done: str | None) -> web.StreamResponse:
    """Run `work(session, worker_id)`; refusal -> the page with the reason."""
    worker_id = _worker_id(request)
    if worker_id is None:
        return _not_found(request)
    try:
        result = await run_db(request.app, lambda s: work(s, worker_id))
    except LookupError:
        return _not_found(request)
    except PeopleError as error:
        return await _person_page(request, worker_id, error=str(error), status=409)
    if done is None:  # the page itself shows the result (a generated password)
        return await _person_page(
            request,
            worker_id,
            message="已生成新密码，请立即转告本人，此页离开后不再显示。",
            new_password=result,
        )
    target = request.app.router["admin_person"].url_for(id=str(worker_id))
    raise web.HTTPSeeOther(target.with_query(done=done))


@admin_only
async def person_role(request: web.Request) -> web.StreamResponse:
    acting: CurrentWorker = request["worker"]
    form = await request.post()
    role = str(form.get("role", ""))
    community = str(form.get("community", ""))[:12]
    return await _person_action(
        request, lambda s, wid: change_role(s, acting, wid, role, community), "role"
    )


@admin_only
async def person_password(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    password = str(form.get("password", ""))[:200]
    if form.get("generate"):
        password = ""
    elif not password:
        worker_id = _worker_id(request)
        if worker_id is None:
            return _not_found(request)
        return await _person_page(
            request, worker_id, error="请输入新密码，或选择“生成随机密码”。", status=400
        )
    return await _person_action(
        request,
        lambda s, wid: reset_password(s, wid, password),
        None if not password else "password",
    )


@admin_only
async def person_active(request: web.Request) -> web.StreamResponse:
    acting: CurrentWorker = request["worker"]
    form = await request.post()
    active = str(form.get("active", "")) == "1"
    return await _person_action(
        request,
        lambda s, wid: set_active(s, acting, wid, active),
        "activated" if active else "deactivated",
    )


# -- handlers: Open311 API keys -----------------------------------------------------------------

PREFIX_RE = re.compile(r"^[0-9a-f]{1,16}$")


async def _keys_page(
    request: web.Request,
    *,
    error: str = "",
    message: str = "",
    new_key: apikeys.NewKey | None = None,
    name: str = "",
    status: int = 200,
) -> web.Response:
    keys = await run_db(request.app, apikeys.list_keys, readonly=True)
    return render(
        request,
        "admin/keys.html",
        {"keys": keys, "error": error, "message": message, "new_key": new_key, "name": name},
        status=status,
    )


@admin_only
async def keys_page(request: web.Request) -> web.StreamResponse:
    return await _keys_page(request, message=DONE_MESSAGES.get(request.query.get("done", ""), ""))


@admin_only
async def keys_create(request: web.Request) -> web.StreamResponse:
    acting: CurrentWorker = request["worker"]
    form = await request.post()
    name = str(form.get("name", "")).strip()[:200]
    if not name or len(name) > 100:
        return await _keys_page(
            request, error="请填写密钥名称（使用它的系统，最多100字）。", name=name, status=400
        )
    new_key = await run_db(
        request.app, lambda s: apikeys.create_key(s, name, created_by=acting.name[:100])
    )
    return await _keys_page(
        request,
        message="密钥已创建。请立即复制并交给对方系统，离开此页后无法再次查看。",
        new_key=new_key,
    )


@admin_only
async def keys_revoke(request: web.Request) -> web.StreamResponse:
    prefix = request.match_info.get("prefix", "")
    if not PREFIX_RE.match(prefix):
        return auth.render_error(request, 404, "没有这个密钥。")
    try:
        await run_db(request.app, lambda s: apikeys.revoke_key(s, prefix))
    except LookupError:
        return auth.render_error(request, 404, "没有这个密钥。")
    raise web.HTTPSeeOther(request.app.router["admin_keys"].url_for().with_query(done="revoked"))
