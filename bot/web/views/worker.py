"""Worker pages: the inbox and the ticket page with its actions, over HTTP.

What the pages show and what an action does is bot.tickets.queries'; these
handlers parse the request, run one of its functions in a thread and render.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import BodyPartReader, web
from sqlalchemy.orm.exc import StaleDataError

from bot import access_log
from bot.accounts import CurrentWorker
from bot.tickets import display, photos, queries, service
from bot.tickets.state import IllegalTransition
from bot.web import auth
from bot.web.db import run_db
from bot.web.keys import CONVERSATION_LOG, SETTINGS

logger = logging.getLogger(__name__)

DONE_MESSAGES = {
    "accept": "已受理该工单。",
    "note": "备注已添加。",
    "resolve": "已办结该工单。",
    "transfer": "工单已转派。",
    "escalate": "工单已升级。",
    "recategorise": "工单类别已修改。",
    "publish": "公开摘要已更新。",
    "photo": "照片已上传。",
}

NUMBER_RE = re.compile(r"^\d{8}-\d{4,}$")


def is_web_link(value: str) -> bool:
    """Only http(s) addresses become links (never javascript: and the like)."""
    return bool(re.match(r"^https?://[^\s\"'<>]+$", value, re.IGNORECASE))


# -- templates -------------------------------------------------------------------


def setup(app: web.Application) -> None:
    """Template filters of the worker pages."""
    tz = ZoneInfo(app[SETTINGS].timezone)

    def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return display.local_time(value, tz).strftime(fmt) if value is not None else ""

    env = aiohttp_jinja2.get_env(app)
    env.filters["localtime"] = localtime
    env.filters["web_link"] = is_web_link
    env.globals["status_filters"] = queries.STATUS_FILTERS


# -- handlers --------------------------------------------------------------------


def _number(request: web.Request) -> str | None:
    """The ticket number of the URL, None when it cannot be one."""
    number = request.match_info["number"]
    return number if NUMBER_RE.match(number) else None


def _not_found(request: web.Request) -> web.Response:
    return auth.render_error(request, 404, "没有这个工单，或者您没有查看它的权限。")


@auth.login_required
async def inbox_page(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]
    status_filter = request.query.get("status", queries.DEFAULT_FILTER)
    if status_filter not in queries.STATUS_FILTERS:
        status_filter = queries.DEFAULT_FILTER
    box = await run_db(
        request.app, lambda s: queries.inbox(s, worker, status_filter), readonly=True
    )
    done = request.query.get("done", "")
    moved = request.query.get("number", "")
    message = DONE_MESSAGES.get(done, "")
    if message and NUMBER_RE.match(moved):
        message = f"工单{moved}：{message}"
    response = aiohttp_jinja2.render_template(
        "inbox.html",
        request,
        {"inbox": box, "status_filter": status_filter, "message": message},
    )
    return auth.page_headers(response)


async def _render_ticket(
    request: web.Request,
    worker: CurrentWorker,
    number: str,
    *,
    error: str = "",
    status: int = 200,
    form: dict[str, str] | None = None,
) -> web.Response:
    log = request.app[CONVERSATION_LOG]

    def load(session):
        found = queries.load_ticket_page(session, worker, number, log)
        if found is not None:  # a page shown is a page recorded (bot.access_log)
            access_log.record(
                session,
                f"worker:{worker.id}",
                access_log.TICKET_PAGE,
                target=number,
                actor_name=worker.name,
            )
        return found

    page = await run_db(request.app, load)
    if page is None:
        return _not_found(request)
    message = "" if error else DONE_MESSAGES.get(request.query.get("done", ""), "")
    response = aiohttp_jinja2.render_template(
        "ticket.html",
        request,
        {
            "t": page,
            "conversation": page.conversation,
            "error": error,
            "message": message,
            "form": form or {},
        },
        status=status,
    )
    return auth.page_headers(response)


@auth.login_required
async def ticket_page(request: web.Request) -> web.StreamResponse:
    number = _number(request)
    if number is None:
        return _not_found(request)
    return await _render_ticket(request, request["worker"], number)


@auth.login_required
async def ticket_action(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]
    action = request.match_info["action"]
    number = _number(request)
    if number is None or action not in queries.ACTIONS:
        return _not_found(request)
    form = await request.post()
    note = str(form.get("note", ""))
    grid_code = str(form.get("grid", ""))
    category_code = str(form.get("category", ""))
    values: dict[str, Any] = {
        "action": action,
        "note": note,
        "grid": grid_code,
        "category": category_code,
    }

    try:
        still_visible = await run_db(
            request.app,
            lambda s: queries.perform_action(
                s,
                worker,
                number,
                action,
                note=note,
                grid_code=grid_code,
                category_code=category_code,
            ),
        )
    except service.TicketNotFound:
        return _not_found(request)
    except IllegalTransition as error:
        return await _render_ticket(
            request, worker, number, error=queries.chinese_part(error), status=409, form=values
        )
    except StaleDataError:
        return await _render_ticket(
            request,
            worker,
            number,
            error="工单刚刚被其他人修改过，请查看最新状态后重试。",
            status=409,
            form=values,
        )
    except queries.ActionRefused as error:
        return await _render_ticket(
            request, worker, number, error=str(error), status=error.status, form=values
        )

    if still_visible:
        target = request.app.router["ticket"].url_for(number=number).with_query(done=action)
    else:
        target = request.app.router["inbox"].url_for().with_query(done=action, number=number)
    raise web.HTTPSeeOther(target)


# -- photos ------------------------------------------------------------------------


def _store(request: web.Request) -> photos.PhotoStore:
    return photos.PhotoStore(request.app[SETTINGS].photo_dir)


@auth.login_required
async def ticket_photo(request: web.Request) -> web.StreamResponse:
    """One photo of a ticket, for a worker who may see the ticket."""
    worker: CurrentWorker = request["worker"]
    number = _number(request)
    photo_id = request.match_info["photo_id"]
    if number is None or not photo_id.isdigit():
        return _not_found(request)
    found = await run_db(
        request.app,
        lambda s: photos.photo_file(s, worker, number, int(photo_id), _store(request)),
        readonly=True,
    )
    if found is None:
        return _not_found(request)
    return web.FileResponse(
        found.path,
        headers={
            "Content-Type": found.content_type,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


# Form fields besides the file (the CSRF token); a little room for multipart headers.
_UPLOAD_OVERHEAD = 16 * 1024


async def ticket_photo_upload(request: web.Request) -> web.StreamResponse:
    """A worker's photo for the ticket (multipart: csrf_token first, then `photo`).

    Not behind `login_required`'s CSRF check, which reads the whole form within the
    app's 1 MB body limit: the body is streamed here, the token checked before the
    file is read, and the file cut off past PHOTO_MAX_BYTES.
    """
    worker = await auth.get_current_worker(request)
    if worker is None:
        raise web.HTTPFound(request.app.router["login"].url_for())
    number = _number(request)
    if number is None:
        return _not_found(request)
    limit = request.app[SETTINGS].photo_max_bytes
    too_large = f"照片太大了（最大{photos.max_size_label(limit)}），没有上传。"
    if (request.content_length or 0) > limit + _UPLOAD_OVERHEAD:
        return await _render_ticket(request, worker, number, error=too_large, status=413)
    if request.content_type != "multipart/form-data":
        return auth.render_error(request, 403, auth.CSRF_MESSAGE)
    reader = await request.multipart()
    token = ""
    data: bytes | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == auth.CSRF_FIELD:
            token = (await part.read(decode=True))[:200].decode("utf-8", "replace")
        elif part.name == "photo":
            if not auth.csrf_matches(request, token):
                return auth.render_error(request, 403, auth.CSRF_MESSAGE)
            data = await _read_part(part, limit)
            if data is None:
                return await _render_ticket(request, worker, number, error=too_large, status=413)
    if not auth.csrf_matches(request, token):
        return auth.render_error(request, 403, auth.CSRF_MESSAGE)
    if not data:
        return await _render_ticket(request, worker, number, error="请选择一张照片。", status=400)
    try:
        added = await run_db(
            request.app,
            lambda s: photos.add_worker_photo(
                s, worker, worker.actor, number, data, _store(request), limit
            ),
        )
    except photos.PhotoRejected as rejected:
        message = (
            too_large
            if rejected.reason == "too_large"
            else "这个文件不是照片（只收jpg、png、gif、webp格式），没有上传。"
        )
        return await _render_ticket(request, worker, number, error=message, status=400)
    if added is None:
        return _not_found(request)
    target = request.app.router["ticket"].url_for(number=number).with_query(done="photo")
    raise web.HTTPSeeOther(target)


async def _read_part(part: BodyPartReader, limit: int) -> bytes | None:
    """The part's bytes, None as soon as they exceed `limit`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
