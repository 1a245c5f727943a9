"""Every admin page and action: 403 for logged-in non-admins, /login for the
logged out, and nothing changes either way."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.apikeys import create_key
from bot.routing.directory import directory_revision
from bot.store.db import session_scope
from bot.store.models import ApiKey, Worker
from tests.web.conftest import ACCOUNTS, WebClient

# Every route of the admin console (method, path; {id} a worker, {prefix} a key).
ADMIN_ROUTES = [
    ("GET", "/admin"),
    ("GET", "/admin/tickets.csv"),
    ("GET", "/admin/directory"),
    ("POST", "/admin/directory/preview"),
    ("POST", "/admin/directory/apply"),
    ("GET", "/admin/people"),
    ("POST", "/admin/people"),
    ("GET", "/admin/people/{id}"),
    ("POST", "/admin/people/{id}/role"),
    ("POST", "/admin/people/{id}/password"),
    ("POST", "/admin/people/{id}/active"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys"),
    ("POST", "/admin/keys/{prefix}/revoke"),
]
# The modules of these routes (the review and models parts of the console
# are tested with their own code).
MODULES = (
    "bot.web.views.admin",
    "bot.web.views.admin_directory",
    "bot.web.views.admin_people",
)

# What each action would do if it were let through: make the caller an admin,
# deactivate them, set a password, add an admin, create or revoke a key.
FORMS = {
    "/admin/people": {"name": "闯入者", "phone": "13999999999", "role": "admin"},
    "/admin/people/{id}/role": {"role": "admin", "community": ""},
    "/admin/people/{id}/password": {"password": "hijacked-password"},
    "/admin/people/{id}/active": {"active": "0"},
    "/admin/keys": {"name": "偷来的密钥"},
    "/admin/directory/apply": {"upload": "x" * 24},
}


def test_the_list_covers_every_admin_route(web_app: web.Application) -> None:
    registered = set()
    for route in web_app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if route.handler.__module__ in MODULES:
            registered.add((route.method, path))
    assert registered == set(ADMIN_ROUTES)


def _every_admin_route(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route under /admin, whichever part registered it;
    placeholders filled with "1" (fits ids, job ids, names and prefixes)."""
    routes = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        canonical = route.resource.canonical
        if canonical == "/admin" or canonical.startswith("/admin/"):
            routes.append((route.method, re.sub(r"\{[^}]+\}", "1", canonical)))
    return sorted(set(routes))


async def test_every_admin_route_whoever_wrote_it_is_admin_only(
    web_app: web.Application, client_factory
) -> None:
    worker: WebClient = await client_factory("worker")
    anonymous: WebClient = await client_factory()
    routes = _every_admin_route(web_app)
    assert len(routes) >= len(ADMIN_ROUTES)
    for method, path in routes:
        if method == "GET":
            response = await worker.get(path, allow_redirects=False)
            assert response.status == 403, (method, path, response.status)
            response = await anonymous.get(path, allow_redirects=False)
            assert response.status == 302, (method, path, response.status)
            assert response.headers["Location"].startswith("/login"), path
        else:
            response = await worker.post_form(path, {})
            assert response.status == 403, (method, path, response.status)
            response = await anonymous.post(path, data={}, allow_redirects=False)
            assert response.status == 302, (method, path, response.status)


def _state(engine: Engine) -> tuple:
    with session_scope(engine, readonly=True) as session:
        workers = session.execute(
            select(
                Worker.id,
                Worker.name,
                Worker.phone,
                Worker.role,
                Worker.community_id,
                Worker.active,
                Worker.password_hash,
            ).order_by(Worker.id)
        ).all()
        keys = session.execute(select(ApiKey.prefix, ApiKey.active).order_by(ApiKey.id)).all()
        return tuple(workers), tuple(keys), directory_revision(session)


def _setup(engine: Engine, account: str) -> dict[str, str]:
    with session_scope(engine) as session:
        key = create_key(session, "12345热线")
        worker_id = session.execute(
            select(Worker.id).where(Worker.phone == ACCOUNTS[account].phone)
        ).scalar_one()
    return {"id": str(worker_id), "prefix": key.prefix}


def _path(template: str, values: dict[str, str]) -> str:
    return template.format(**values)


@pytest.mark.parametrize("method,template", ADMIN_ROUTES)
@pytest.mark.parametrize("role", ["worker", "staff"])
async def test_non_admins_get_403_and_change_nothing(
    method: str,
    template: str,
    role: str,
    client_factory,
    web_engine: Engine,
) -> None:
    values = _setup(web_engine, role)
    client: WebClient = await client_factory(role)
    before = _state(web_engine)
    path = _path(template, values)
    if method == "GET":
        response = await client.get(path, allow_redirects=False)
    else:
        response = await client.post_form(path, FORMS.get(template, {}))
    assert response.status == 403, (method, path, response.status)
    text = await response.text()
    assert "无权访问" in text
    assert _state(web_engine) == before


@pytest.mark.parametrize("method,template", ADMIN_ROUTES)
async def test_anonymous_users_are_sent_to_login(
    method: str, template: str, anon_client: WebClient, web_engine: Engine
) -> None:
    values = _setup(web_engine, "worker")
    before = _state(web_engine)
    path = _path(template, values)
    if method == "GET":
        response = await anon_client.get(path, allow_redirects=False)
        assert response.status == 302
        location = response.headers["Location"]
        assert location.startswith("/login?next=")
    else:
        # with a valid CSRF token (from the login page) and without one
        for csrf in (True, False):
            form = dict(FORMS.get(template, {}))
            if csrf:
                form["csrf_token"] = await anon_client.csrf("/login")
            response = await anon_client.post(path, data=form, allow_redirects=False)
            assert response.status == 302, (path, response.status)
            assert response.headers["Location"].startswith("/login")
    assert _state(web_engine) == before


async def test_posts_without_csrf_are_refused_even_for_admins(
    admin_client: WebClient, web_engine: Engine
) -> None:
    values = _setup(web_engine, "worker")
    before = _state(web_engine)
    for method, template in ADMIN_ROUTES:
        if method != "POST":
            continue
        path = _path(template, values)
        response = await admin_client.post_form(path, FORMS.get(template, {}), csrf=False)
        assert response.status == 403, path
        assert "安全校验失败" in await response.text()
    assert _state(web_engine) == before


async def test_only_admins_see_the_admin_link(
    admin_client: WebClient, worker_client: WebClient, staff_client: WebClient
) -> None:
    link = re.compile(r'<a href="/admin">管理</a>')
    assert link.search(await (await admin_client.get("/")).text())
    assert not link.search(await (await worker_client.get("/")).text())
    assert not link.search(await (await staff_client.get("/")).text())
