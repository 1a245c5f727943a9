"""Community staff's consultation pages (协商议事), over HTTP.

A proposal ticket becomes a consultation (question, options, closing time, grid
or building); its page shows the answers so far and closes it with a decision.
What happens is bot.consultations.service's; these handlers parse and render.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from bot.accounts import CurrentWorker
from bot.consultations import notices
from bot.consultations import service as consultations
from bot.store.models import utcnow
from bot.web import auth
from bot.web.db import run_db
from bot.web.keys import SETTINGS

STAFF = ("community_staff", "admin")
NUMBER_RE = re.compile(r"^\d{8}-\d{4,}$")
NOT_FOUND = "没有这个协商事项，或者您没有查看它的权限。"


def parse_local_time(value: str, zone: str) -> datetime | None:
    """2026-12-10T18:00 (a datetime-local field, in the service's time zone) -> UTC."""
    try:
        local = datetime.strptime(value.strip(), "%Y-%m-%dT%H:%M")
    except ValueError:
        return None
    return local.replace(tzinfo=ZoneInfo(zone))


def _int(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() and len(value) <= 6 else None


def _summary(session, worker: CurrentWorker, consultation) -> dict:
    counts = consultations.results(session, consultation)
    return {
        "id": consultation.id,
        "question": consultation.question,
        "options": list(zip(consultation.options, counts, strict=False)),
        "total": sum(counts),
        "eligible": len(consultations.eligible_residents(session, consultation)),
        "scope": notices.scope_label(consultation),
        "closes_at": consultation.closes_at,
        "open": consultations.is_open(consultation),
        "status": consultation.status,
        "decision": consultation.decision,
        "ticket": consultation.ticket.number if consultation.ticket else None,
    }


@auth.login_required(roles=STAFF)
async def list_page(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]

    def load(session):
        return [_summary(session, worker, c) for c in consultations.of_community(session, worker)]

    items = await run_db(request.app, load, readonly=True)
    response = aiohttp_jinja2.render_template("consultations/list.html", request, {"items": items})
    return auth.page_headers(response)


async def _new_form(
    request: web.Request, number: str, *, form: dict, errors: list[str], status: int = 200
) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]

    def load(session):
        ticket = consultations.proposal_for(session, worker, number)
        return {
            "number": ticket.number,
            "description": ticket.description,
            "grid": ticket.grid.name if ticket.grid else None,
            "building": ticket.building,
        }

    try:
        proposal = await run_db(request.app, load, readonly=True)
    except consultations.NotFound:
        return auth.render_error(request, 404, "没有这条居民提议，或者您没有处理它的权限。")
    response = aiohttp_jinja2.render_template(
        "consultations/new.html",
        request,
        {"p": proposal, "form": form, "errors": errors},
        status=status,
    )
    return auth.page_headers(response)


@auth.login_required(roles=STAFF)
async def new_page(request: web.Request) -> web.StreamResponse:
    number = request.query.get("ticket", "")
    if not NUMBER_RE.match(number):
        return auth.render_error(request, 404, "没有这条居民提议。")
    return await _new_form(request, number, form={}, errors=[])


@auth.login_required(roles=STAFF)
async def create(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]
    data = await request.post()
    form = {
        k: str(data.get(k, ""))
        for k in ("ticket", "question", "options", "closes_at", "scope", "building")
    }
    number = form["ticket"]
    if not NUMBER_RE.match(number):
        return auth.render_error(request, 404, "没有这条居民提议。")
    draft = consultations.Draft(
        question=form["question"],
        options=form["options"].splitlines(),
        closes_at=parse_local_time(form["closes_at"], request.app[SETTINGS].timezone),
        scope=form["scope"],
        building=_int(form["building"]),
    )
    try:
        consultation_id = await run_db(
            request.app,
            lambda s: consultations.create(s, worker, number, draft, actor=worker.actor).id,
        )
    except consultations.NotFound:
        return auth.render_error(request, 404, "没有这条居民提议，或者您没有处理它的权限。")
    except consultations.Invalid as error:
        return await _new_form(request, number, form=form, errors=error.problems, status=400)
    raise web.HTTPSeeOther(f"/consultations/{consultation_id}")


async def _detail(
    request: web.Request, consultation_id: int, *, error: str = "", status: int = 200
) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]

    def load(session):
        return _summary(
            session, worker, consultations.get_for_staff(session, worker, consultation_id)
        )

    try:
        item = await run_db(request.app, load, readonly=True)
    except consultations.NotFound:
        return auth.render_error(request, 404, NOT_FOUND)
    message = "协商已结束，结果和决定已发给居民。" if request.query.get("done") == "close" else ""
    response = aiohttp_jinja2.render_template(
        "consultations/detail.html",
        request,
        {"c": item, "error": error, "message": message, "now": utcnow()},
        status=status,
    )
    return auth.page_headers(response)


@auth.login_required(roles=STAFF)
async def detail_page(request: web.Request) -> web.StreamResponse:
    return await _detail(request, int(request.match_info["id"]))


@auth.login_required(roles=STAFF)
async def close(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]
    consultation_id = int(request.match_info["id"])
    data = await request.post()
    decision = str(data.get("decision", ""))
    try:
        await run_db(
            request.app,
            lambda s: consultations.close(s, worker, consultation_id, decision, actor=worker.actor),
        )
    except consultations.NotFound:
        return auth.render_error(request, 404, NOT_FOUND)
    except consultations.Closed:
        return await _detail(request, consultation_id, error="这次协商已经结束了。", status=409)
    except consultations.Invalid as error:
        return await _detail(request, consultation_id, error="；".join(error.problems), status=400)
    raise web.HTTPSeeOther(f"/consultations/{consultation_id}?done=close")
