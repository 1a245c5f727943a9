"""Admin console: people (workers, community staff, admins) and Open311 API keys.

Grid workers come from the grid directory (imported on the directory page);
here admins add community staff and other admins, change roles and
communities, set passwords and deactivate accounts (bot.accounts, with its
guard rails) and create or revoke API keys (bot.apikeys).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot import accounts, apikeys
from bot.accounts import ADDABLE_ROLES, ROLES, CurrentWorker, NewPerson, PeopleError
from bot.tickets.display import ROLE_LABELS, role_label
from bot.web import auth
from bot.web.db import run_db
from bot.web.views.admin import admin_only, render

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
    page = await run_db(request.app, accounts.people_page, readonly=True)
    return render(
        request,
        "admin/people.html",
        {
            "workers": page.workers,
            "communities": page.communities,
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
            lambda s: accounts.add_person(
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
    label = role_label(created.role)
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
    page = await run_db(request.app, lambda s: accounts.person_page(s, worker_id), readonly=True)
    person = page.person
    if person is None:
        return _not_found(request)
    return render(
        request,
        "admin/person.html",
        {
            "p": person,
            "communities": page.communities,
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
        request, lambda s, wid: accounts.change_role(s, acting, wid, role, community), "role"
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
        lambda s, wid: accounts.reset_password(s, wid, password),
        None if not password else "password",
    )


@admin_only
async def person_active(request: web.Request) -> web.StreamResponse:
    acting: CurrentWorker = request["worker"]
    form = await request.post()
    active = str(form.get("active", "")) == "1"
    return await _person_action(
        request,
        lambda s, wid: accounts.set_active(s, acting, wid, active),
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
    # No box ticked: a posting key, as keys were before scopes existed.
    scopes = [str(v) for v in form.getall("scope", []) if str(v) in apikeys.SCOPES]
    new_key = await run_db(
        request.app,
        lambda s: apikeys.create_key(
            s, name, created_by=acting.name[:100], scopes=scopes or [apikeys.WRITE]
        ),
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
