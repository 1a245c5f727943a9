"""The residents' "my reports" page (/me), over HTTP.

Sign-in is bot.web.resident_auth's (WeChat web authorisation); what the page
shows and does is bot.tickets.mine's.
"""

from __future__ import annotations

import re

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.orm.exc import StaleDataError

from bot.consultations import notices
from bot.consultations import service as consultations
from bot.tickets import display, mine, photos
from bot.tickets.state import IllegalTransition
from bot.web import auth, resident_auth
from bot.web.db import run_db
from bot.web.keys import SETTINGS

NUMBER_RE = re.compile(r"^\d{8}-\d{4,}$")
CHANGED = "工单状态刚刚有变化，请查看最新状态。"
NOT_FOUND = "没有找到这个工单。"


async def _render(request: web.Request, *, message: str = "", error: str = "", status: int = 200):
    openid = request["openid"]

    def load(session):
        return mine.my_tickets(session, openid), consultation_cards(session, openid)

    tickets, cards = await run_db(request.app, load, readonly=True)
    response = aiohttp_jinja2.render_template(
        "resident/mine.html",
        request,
        {"tickets": tickets, "consultations": cards, "message": message, "error": error},
        status=status,
    )
    return auth.page_headers(response)


@resident_auth.resident_required
async def my_reports(request: web.Request) -> web.StreamResponse:
    done = request.query.get("done", "")
    message = VOTE_DONE if done == "vote" else display.RESIDENT_ACTION_DONE.get(done, "")
    return await _render(request, message=message)


async def oauth_callback(request: web.Request) -> web.StreamResponse:
    return await resident_auth.finish_sign_in(request)


@resident_auth.resident_required
async def ticket_action(request: web.Request) -> web.StreamResponse:
    number = request.match_info["number"]
    action = request.match_info["action"]
    if not NUMBER_RE.match(number) or action not in mine.ACTIONS:
        return await _render(request, error=NOT_FOUND, status=404)
    form = await request.post()
    reason = str(form.get("reason", "")) or None
    openid = request["openid"]
    try:
        await run_db(request.app, lambda s: mine.act(s, openid, number, action, reason))
    except mine.NotYours:
        return await _render(request, error=NOT_FOUND, status=404)
    except (IllegalTransition, StaleDataError):
        return await _render(request, error=CHANGED, status=409)
    raise web.HTTPSeeOther(f"/me?done={action}#t-{number}")


# -- consultations of the resident's grid or building (协商议事) ---------------------

VOTE_DONE = "您的意见已记下，每户居民一票。结果出来后会告诉您。"
VOTE_REFUSED = {
    consultations.AlreadyAnswered: (409, "您已经表达过意见了，每户居民只能投一票。"),
    consultations.Closed: (409, "这次协商已经截止了。"),
    consultations.UnclearAnswer: (400, "请选择一个选项再提交。"),
}


def consultation_cards(session, openid: str) -> list[dict]:
    """The consultations the resident may answer (and closed ones with results)."""
    cards = []
    for pending in consultations.for_resident(session, openid, include_closed=True):
        c = pending.consultation
        closed = not consultations.is_open(c)
        counts = consultations.results(session, c) if closed else None
        cards.append(
            {
                "id": c.id,
                "question": c.question,
                "scope": notices.scope_label(c),
                "options": list(c.options),
                "counts": counts,
                "results": notices.results_line(c, counts) if counts is not None else "",
                "closes": display.resident_time(c.closes_at),
                "closed": closed,
                "decision": c.decision,
                "answered": pending.answered,
            }
        )
    return cards


@resident_auth.resident_required
async def consultation_answer(request: web.Request) -> web.StreamResponse:
    consultation_id = int(request.match_info["id"])
    form = await request.post()
    raw = str(form.get("option", ""))
    option = int(raw) if raw.isdigit() and len(raw) < 4 else -1
    openid = request["openid"]
    try:
        await run_db(
            request.app,
            lambda s: consultations.answer(s, consultation_id, openid, option, channel="page"),
        )
    except (consultations.NotFound, consultations.NotEligible):
        return await _render(request, error="没有找到这个协商事项。", status=404)
    except consultations.ConsultationError as error:
        status, message = VOTE_REFUSED.get(type(error), (409, CHANGED))
        return await _render(request, error=message, status=status)
    raise web.HTTPSeeOther(f"/me?done=vote#c-{consultation_id}")


@resident_auth.resident_required
async def ticket_photo(request: web.Request) -> web.StreamResponse:
    """A photo of the resident's own ticket (theirs or the worker's)."""
    number = request.match_info["number"]
    photo_id = int(request.match_info["photo_id"])
    if not NUMBER_RE.match(number):
        return await _render(request, error=NOT_FOUND, status=404)
    openid = request["openid"]
    store = photos.PhotoStore(request.app[SETTINGS].photo_dir)
    found = await run_db(
        request.app,
        lambda s: photos.resident_photo_file(s, openid, number, photo_id, store),
        readonly=True,
    )
    if found is None:
        return await _render(request, error=NOT_FOUND, status=404)
    return web.FileResponse(
        found.path,
        headers={
            "Content-Type": found.content_type,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
