"""The residents' "my reports" page (/me), over HTTP.

Sign-in is bot.web.resident_auth's (WeChat web authorisation); what the page
shows and does is bot.tickets.mine's.
"""

from __future__ import annotations

import re

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.orm.exc import StaleDataError

from bot.tickets import display, mine
from bot.tickets.state import IllegalTransition
from bot.web import auth, resident_auth
from bot.web.db import run_db

NUMBER_RE = re.compile(r"^\d{8}-\d{4,}$")
CHANGED = "工单状态刚刚有变化，请查看最新状态。"
NOT_FOUND = "没有找到这个工单。"


async def _render(request: web.Request, *, message: str = "", error: str = "", status: int = 200):
    openid = request["openid"]
    tickets = await run_db(request.app, lambda s: mine.my_tickets(s, openid), readonly=True)
    response = aiohttp_jinja2.render_template(
        "resident/mine.html",
        request,
        {"tickets": tickets, "message": message, "error": error},
        status=status,
    )
    return auth.page_headers(response)


@resident_auth.resident_required
async def my_reports(request: web.Request) -> web.StreamResponse:
    done = request.query.get("done", "")
    return await _render(request, message=display.RESIDENT_ACTION_DONE.get(done, ""))


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
