"""Worker pages: the inbox and the ticket page with its actions, over HTTP.

What the pages show and what an action does is bot.tickets.queries'; these
handlers parse the request, run one of its functions in a thread and render.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.future import create_engine
from sqlalchemy.orm.exc import StaleDataError

from bot.accounts import CurrentWorker
from bot.tickets import display, queries, service
from bot.tickets.state import IllegalTransition
from bot.web import auth
from bot.web.db import run_db
from bot.web.keys import SETTINGS

logger = logging.getLogger(__name__)

CONVERSATION_MESSAGES = 10

DONE_MESSAGES = {
    "accept": "已受理该工单。",
    "note": "备注已添加。",
    "resolve": "已办结该工单。",
    "transfer": "工单已转派。",
    "escalate": "工单已升级。",
    "recategorise": "工单类别已修改。",
}

NUMBER_RE = re.compile(r"^\d{8}-\d{4,}$")


def is_web_link(value: str) -> bool:
    """Only http(s) addresses become links (never javascript: and the like)."""
    return bool(re.match(r"^https?://[^\s\"'<>]+$", value, re.IGNORECASE))


# -- the residents' conversation log (Rasa's tracker store) --------------------


@dataclass(frozen=True)
class ResidentMessage:
    text: str
    at: datetime


class ConversationLog:
    """Reads residents' messages from Rasa's `events` table, read-only.

    The tracker database may be missing (no Rasa yet, another server): then
    the ticket page simply goes without the conversation.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _sqlite_path(self) -> Path | None:
        url = make_url(self.url)
        if url.get_backend_name() != "sqlite":
            return None
        return Path(url.database) if url.database and url.database != ":memory:" else Path()

    def _get_engine(self) -> Engine | None:
        with self._lock:
            if self._engine is not None:
                return self._engine
            path = self._sqlite_path()
            if path is not None:
                if not path.name or not path.is_file():
                    return None  # never create an empty conversation log
                # Read-only: this process must never write Rasa's log.
                self._engine = create_engine(
                    f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true",
                    connect_args={"check_same_thread": False, "timeout": 5},
                )
            else:
                self._engine = create_engine(self.url, pool_pre_ping=True, pool_size=2)
            return self._engine

    def recent_user_messages(
        self, sender_id: str, before: datetime, limit: int = CONVERSATION_MESSAGES
    ) -> list[ResidentMessage]:
        """The resident's last `limit` messages up to `before`, oldest first."""
        try:
            engine = self._get_engine()
            if engine is None:
                return []
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT data, timestamp FROM events "
                        "WHERE sender_id = :sender AND type_name = 'user' AND timestamp <= :before "
                        "ORDER BY timestamp DESC, id DESC LIMIT :limit"
                    ),
                    # some rows may be button payloads, skipped below
                    {"sender": sender_id, "before": before.timestamp(), "limit": limit + 20},
                ).all()
        except SQLAlchemyError as error:
            logger.warning("conversation log not readable: %s", error)
            return []
        messages = []
        for data, timestamp in reversed(rows):
            try:
                message = json.loads(data or "{}").get("text")
            except (ValueError, AttributeError):
                continue
            # "/intent" texts are button payloads, not the resident's words.
            if isinstance(message, str) and message.strip() and not message.startswith("/"):
                at = datetime.fromtimestamp(float(timestamp or 0), tz=before.tzinfo)
                messages.append(ResidentMessage(message, at))
        return messages[-limit:]

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


CONVERSATIONS = web.AppKey("worker_pages.conversations", ConversationLog)
# Messages up to this long after the ticket was opened still count as its own
# (the action that opens it runs after the message is logged, clocks differ).
CONVERSATION_SLACK = timedelta(seconds=5)


async def conversation_ctx(app: web.Application) -> AsyncIterator[None]:
    log = ConversationLog(app[SETTINGS].tracker_database_url)
    app[CONVERSATIONS] = log
    yield
    log.dispose()


# -- templates -------------------------------------------------------------------


def setup(app: web.Application) -> None:
    """Template filters of the worker pages; the conversation log resource."""
    tz = ZoneInfo(app[SETTINGS].timezone)

    def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return display.local_time(value, tz).strftime(fmt) if value is not None else ""

    env = aiohttp_jinja2.get_env(app)
    env.filters["localtime"] = localtime
    env.filters["web_link"] = is_web_link
    env.globals["status_filters"] = queries.STATUS_FILTERS
    app.cleanup_ctx.append(conversation_ctx)


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
    page = await run_db(
        request.app, lambda s: queries.load_ticket_page(s, worker, number), readonly=True
    )
    if page is None:
        return _not_found(request)
    conversation = await asyncio.to_thread(
        request.app[CONVERSATIONS].recent_user_messages,
        page.sender_id,
        page.created_at + CONVERSATION_SLACK,
    )
    message = "" if error else DONE_MESSAGES.get(request.query.get("done", ""), "")
    response = aiohttp_jinja2.render_template(
        "ticket.html",
        request,
        {
            "t": page,
            "conversation": conversation,
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
