"""Worker pages: the inbox and the ticket page with its actions.

The first half is plain functions on a Session (what the pages show, what an
action does), testable without HTTP; the handlers at the end only glue them to
requests. Who may see which ticket is decided in bot.web.access only; every
change goes through bot.tickets.service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.future import create_engine
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from bot.store.models import Community, Grid, Ticket, utcnow
from bot.taxonomy import get_taxonomy
from bot.tickets import display, service
from bot.tickets.state import (
    IN_PROGRESS,
    Action,
    IllegalTransition,
    Status,
    can,
    next_level,
)
from bot.web import auth
from bot.web.access import can_see, visible_clause
from bot.web.auth import CurrentWorker
from bot.web.db import run_db
from bot.web.keys import SETTINGS

logger = logging.getLogger(__name__)

INBOX_LIMIT = 200
MAX_NOTE = 2000
CONVERSATION_MESSAGES = 10

# Inbox tabs: name -> (label, statuses; None = all).
STATUS_FILTERS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "active": ("未办结", ("open", "escalated", "accepted")),
    "open": ("待受理", ("open", "escalated")),
    "accepted": ("处理中", ("accepted",)),
    "done": ("已办结", ("resolved", "closed", "cancelled")),
    "all": ("全部", None),
}
DEFAULT_FILTER = "active"

DONE_MESSAGES = {
    "accept": "已受理该工单。",
    "note": "备注已添加。",
    "resolve": "已办结该工单。",
    "transfer": "工单已转派。",
    "escalate": "工单已升级。",
    "recategorise": "工单类别已修改。",
}

NUMBER_RE = re.compile(r"^\d{8}-\d{4,}$")


# -- time and SLA --------------------------------------------------------------


@dataclass(frozen=True)
class Sla:
    """The ticket's deadline as the inbox shows it."""

    css: str  # "overdue" (red), "due-soon" (amber), "on-time", "" (not running)
    text: str

    @property
    def running(self) -> bool:
        return bool(self.css)


# Amber when less than this share of the SLA window, or less than this many
# hours, is left: short SLAs warn in time, long ones not days ahead.
DUE_SOON_SHARE = 0.25
DUE_SOON_HOURS = 4


def sla_state(status: str, due_at: datetime | None, sla_hours: float, now: datetime) -> Sla:
    """Countdown of a ticket: remaining time, or how long it is overdue."""
    if due_at is None or Status(status) not in IN_PROGRESS:
        return Sla("", "")
    left = due_at - now
    if left <= timedelta(0):
        return Sla("overdue", display.overdue_text(left))
    soon = max(timedelta(hours=sla_hours) * DUE_SOON_SHARE, timedelta(hours=DUE_SOON_HOURS))
    return Sla("due-soon" if left < soon else "on-time", display.remaining_text(left))


def category_sla_hours(code: str) -> float:
    category = get_taxonomy().by_code(code)
    return category.sla_hours if category else 24


def is_web_link(value: str) -> bool:
    """Only http(s) addresses become links (never javascript: and the like)."""
    return bool(re.match(r"^https?://[^\s\"'<>]+$", value, re.IGNORECASE))


# -- inbox -------------------------------------------------------------------


@dataclass(frozen=True)
class InboxRow:
    number: str
    category: str
    description: str
    address: str
    status: str
    status_label: str
    level_label: str
    grid: str | None
    due_at: datetime | None
    sla: Sla


@dataclass(frozen=True)
class Inbox:
    rows: list[InboxRow]
    counts: dict[str, int]  # filter name -> tickets
    truncated: bool


def inbox(
    session: Session,
    worker: CurrentWorker,
    status_filter: str = DEFAULT_FILTER,
    now: datetime | None = None,
    limit: int = INBOX_LIMIT,
) -> Inbox:
    """The tickets `worker` may see, soonest due first (no deadline last)."""
    now = now or utcnow()
    visible = visible_clause(worker)
    statuses = STATUS_FILTERS.get(status_filter, STATUS_FILTERS[DEFAULT_FILTER])[1]
    query = select(Ticket).where(visible)
    if statuses is not None:
        query = query.where(Ticket.status.in_(statuses))
    tickets = (
        session.execute(
            query.options(selectinload(Ticket.community), selectinload(Ticket.grid))
            .order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.id)
            .limit(limit + 1)
        )
        .scalars()
        .all()
    )
    by_status = dict(
        session.execute(
            select(Ticket.status, func.count(Ticket.id)).where(visible).group_by(Ticket.status)
        ).all()
    )
    counts = {
        name: sum(n for st, n in by_status.items() if wanted is None or st in wanted)
        for name, (_label, wanted) in STATUS_FILTERS.items()
    }
    rows = [
        InboxRow(
            number=t.number,
            category=display.category_label(t.category_code),
            description=t.description,
            address=display.address_of(t),
            status=t.status,
            status_label=display.status_label(t.status),
            level_label=display.level_label(t.level),
            grid=t.grid.code if t.grid else None,
            due_at=t.due_at,
            sla=sla_state(t.status, t.due_at, category_sla_hours(t.category_code), now),
        )
        for t in tickets[:limit]
    ]
    return Inbox(rows=rows, counts=counts, truncated=len(tickets) > limit)


# -- the ticket page -----------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    type_label: str
    actor: str
    actor_raw: str
    at: datetime
    note: str | None


@dataclass(frozen=True)
class GridChoice:
    code: str
    name: str
    worker: str | None


@dataclass
class TicketPage:
    id: int
    number: str
    category: str
    kind: str
    description: str
    original_text: str | None
    address: str
    resident_address: str | None  # as the resident wrote it, when the address does not say it
    community: str | None
    grid: str | None
    grid_name: str | None
    level_label: str
    status: str
    status_label: str
    handler: str  # the member of staff who has it, else the office
    routing_reason: str | None
    created_at: datetime
    due_at: datetime | None
    sla: Sla
    photos: list[str]
    sender_id: str
    channel: str | None
    events: list[EventRow]
    actions: set[str]
    escalate_to: str | None
    grid_choices: list[tuple[str, list[GridChoice]]] = field(default_factory=list)
    # "change category": (code, label) of the other categories, when allowed
    category_code: str = ""
    category_choices: list[tuple[str, str]] = field(default_factory=list)


def load_ticket_page(
    session: Session, worker: CurrentWorker, number: str, now: datetime | None = None
) -> TicketPage | None:
    """What the ticket page shows, or None when there is no such ticket for
    this worker (unknown and not visible look the same)."""
    ticket = service.get_ticket(session, number)
    if ticket is None or not can_see(worker, ticket):
        return None
    now = now or utcnow()
    actions = {"note"}
    for action in (Action.ACCEPT, Action.RESOLVE, Action.TRANSFER):
        if can(ticket.status, action):
            actions.add(action.value)
    up = next_level(ticket.level)
    if up is not None and can(ticket.status, Action.ESCALATE):
        actions.add("escalate")
    categories = _category_choices(ticket)
    if categories:
        actions.add("recategorise")
    place = display.place_of(ticket)
    address = display.address_label(place) or display.NO_ADDRESS
    return TicketPage(
        id=ticket.id,
        number=ticket.number,
        category=display.category_label(ticket.category_code),
        kind=ticket.kind,
        description=ticket.description,
        original_text=ticket.original_text,
        address=address,
        resident_address=display.words_beside(address, place),
        community=ticket.community.name if ticket.community else None,
        grid=ticket.grid.code if ticket.grid else None,
        grid_name=ticket.grid.name if ticket.grid else None,
        level_label=display.level_label(ticket.level),
        status=ticket.status,
        status_label=display.status_label(ticket.status),
        handler=display.handler_of(ticket),
        routing_reason=ticket.routing_reason,
        created_at=ticket.created_at,
        due_at=ticket.due_at,
        sla=sla_state(ticket.status, ticket.due_at, category_sla_hours(ticket.category_code), now),
        photos=[str(p) for p in (ticket.photos or [])],
        sender_id=ticket.sender_id,
        channel=ticket.channel,
        events=[
            EventRow(
                type_label=display.event_label(e.type),
                actor=display.actor_label(e.actor),
                actor_raw=e.actor,
                at=e.at,
                note=e.note,
            )
            for e in ticket.events
        ],
        actions=actions,
        escalate_to=display.level_label(up) if up else None,
        grid_choices=_grid_choices(session, exclude=ticket.grid_id)
        if "transfer" in actions
        else [],
        category_code=ticket.category_code,
        category_choices=categories,
    )


def _category_choices(ticket: Ticket) -> list[tuple[str, str]]:
    """Categories the ticket may be changed to (none once closed or cancelled)."""
    if Status(ticket.status) in (Status.CLOSED, Status.CANCELLED):
        return []
    return [(c.code, c.label) for c in get_taxonomy().categories if c.code != ticket.category_code]


def _grid_choices(session: Session, exclude: int | None) -> list[tuple[str, list[GridChoice]]]:
    rows = session.execute(
        select(Grid, Community.name)
        .join(Community, Grid.community_id == Community.id)
        .where(Grid.active.is_(True))
        .options(selectinload(Grid.worker))
        .order_by(Community.name, Grid.code)
    ).all()
    groups: dict[str, list[GridChoice]] = {}
    for grid, community in rows:
        if grid.id == exclude:
            continue
        groups.setdefault(community, []).append(
            GridChoice(grid.code, grid.name, grid.worker.name if grid.worker else None)
        )
    return list(groups.items())


# -- actions -------------------------------------------------------------------


class ActionRefused(Exception):
    """The worker's input is not acceptable (shown to them; nothing changed)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


ACTIONS = ("accept", "note", "resolve", "transfer", "escalate", "recategorise")


def perform_action(
    session: Session,
    worker: CurrentWorker,
    number: str,
    action: str,
    note: str = "",
    grid_code: str = "",
    now: datetime | None = None,
    category_code: str = "",
) -> bool:
    """Do `action` on the ticket as `worker`, in the caller's transaction.

    Returns whether the worker can still see the ticket afterwards (a
    transfer may hand it to someone else). Raises service.TicketNotFound
    (unknown or not visible), IllegalTransition, or ActionRefused.
    """
    ticket = service.get_ticket(session, number)
    if ticket is None or not can_see(worker, ticket):
        raise service.TicketNotFound(number)
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ActionRefused(f"说明太长了（最多{MAX_NOTE}字）。")
    actor = worker.actor
    if action == "accept":
        service.accept(session, ticket, actor, note=note or None, worker_id=worker.id, now=now)
    elif action == "note":
        if not note:
            raise ActionRefused("请填写备注内容。")
        service.add_note(session, ticket, actor, note, now=now)
    elif action == "resolve":
        if not note:
            raise ActionRefused("办结时请填写处理结果说明（居民会看到）。")
        service.resolve(session, ticket, actor, note=note, now=now)
    elif action == "transfer":
        grid_code = grid_code.strip()
        if not grid_code:
            raise ActionRefused("请选择要转派的网格。")
        if ticket.grid is not None and ticket.grid.code == grid_code:
            raise ActionRefused("工单已在该网格，请选择其他网格。")
        try:
            service.transfer(session, ticket, grid_code, actor, reason=note or None, now=now)
        except ValueError:
            raise ActionRefused(f"没有启用的网格“{grid_code}”，请重新选择。") from None
    elif action == "escalate":
        up = next_level(ticket.level)
        # Without a reason the service would write its overdue wording.
        reason = note or f"{worker.name}提请升级至{display.level_label(up) or '上一级'}"
        service.escalate(session, ticket, actor, reason=reason, now=now)
    elif action == "recategorise":
        # the assistant chose the wrong category (the review inbox learns from this)
        if not category_code.strip():
            raise ActionRefused("请选择新的类别。")
        try:
            service.recategorise(
                session, ticket, category_code.strip(), actor, reason=note or None, now=now
            )
        except ValueError as error:
            raise ActionRefused(chinese_part(error), status=409) from None
    else:
        raise ActionRefused("未知的操作。")
    session.flush()
    return can_see(worker, ticket)


def chinese_part(error: Exception) -> str:
    """The Chinese half of a bilingual message ("中文。 / English.")."""
    return str(error).split(" / ", 1)[0]


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
    env.globals["status_filters"] = STATUS_FILTERS
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
    status_filter = request.query.get("status", DEFAULT_FILTER)
    if status_filter not in STATUS_FILTERS:
        status_filter = DEFAULT_FILTER
    box = await run_db(request.app, lambda s: inbox(s, worker, status_filter), readonly=True)
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
    page = await run_db(request.app, lambda s: load_ticket_page(s, worker, number), readonly=True)
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
    if number is None or action not in ACTIONS:
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
            lambda s: perform_action(
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
            request, worker, number, error=chinese_part(error), status=409, form=values
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
    except ActionRefused as error:
        return await _render_ticket(
            request, worker, number, error=str(error), status=error.status, form=values
        )

    if still_visible:
        target = request.app.router["ticket"].url_for(number=number).with_query(done=action)
    else:
        target = request.app.router["inbox"].url_for().with_query(done=action, number=number)
    raise web.HTTPSeeOther(target)
