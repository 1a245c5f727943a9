"""What the worker pages show and do: the inbox, the ticket page, its actions.

Plain functions on a Session (the web app runs them in a thread), testable
without HTTP. Who may see which ticket is decided in bot.tickets.access only;
every change goes through bot.tickets.service; every word shown comes from
bot.tickets.display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.accounts import CurrentWorker
from bot.conversation_log import ConversationLog, LoggedMessage
from bot.store.models import Community, Grid, Ticket, utcnow
from bot.taxonomy import get_taxonomy
from bot.tickets import display, publication, service
from bot.tickets.access import can_see, visible_clause
from bot.tickets.photos import PhotoView, photos_of
from bot.tickets.state import (
    IN_PROGRESS,
    Action,
    Status,
    can,
    next_level,
)

INBOX_LIMIT = 200
MAX_NOTE = 2000
CONVERSATION_MESSAGES = 10
# Messages up to this long after the ticket was opened still count as its own
# (the action that opens it runs after the message is logged, clocks differ).
CONVERSATION_SLACK = timedelta(seconds=5)

# Inbox tabs: name -> (label, statuses; None = all).
STATUS_FILTERS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "active": ("未办结", ("open", "escalated", "accepted")),
    "open": ("待受理", ("open", "escalated")),
    "accepted": ("处理中", ("accepted",)),
    "done": ("已办结", ("resolved", "closed", "cancelled")),
    "all": ("全部", None),
}
DEFAULT_FILTER = "active"

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
    photos: list[str]  # links kept on the ticket (e.g. an Open311 media_url)
    sender_id: str
    channel: str | None
    events: list[EventRow]
    actions: set[str]
    escalate_to: str | None
    grid_choices: list[tuple[str, list[GridChoice]]] = field(default_factory=list)
    # "change category": (code, label) of the other categories, when allowed
    category_code: str = ""
    category_choices: list[tuple[str, str]] = field(default_factory=list)
    # the resident's messages before the ticket opened (Rasa's conversation log)
    conversation: list[LoggedMessage] = field(default_factory=list)
    # publication: may the category appear in public, and the summary staff published
    category_public: bool = False
    public_summary: str | None = None
    # photos attached (bot.tickets.photos): the resident's and the workers'
    attached_photos: list[PhotoView] = field(default_factory=list)


def load_ticket_page(
    session: Session,
    worker: CurrentWorker,
    number: str,
    log: ConversationLog | None = None,
    now: datetime | None = None,
) -> TicketPage | None:
    """What the ticket page shows, or None when there is no such ticket for
    this worker (unknown and not visible look the same). With `log`, the
    resident's last messages before the ticket opened come with it."""
    ticket = service.get_ticket(session, number)
    if ticket is None or not can_see(worker, ticket):
        return None
    now = now or utcnow()
    actions = {"note", "publish"}
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
        conversation=log.recent_messages(
            ticket.sender_id, ticket.created_at + CONVERSATION_SLACK, CONVERSATION_MESSAGES
        )
        if log is not None
        else [],
        category_public=publication.is_public_category(ticket.category_code),
        public_summary=ticket.public_summary,
        attached_photos=photos_of(session, ticket),
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


ACTIONS = ("accept", "note", "resolve", "transfer", "escalate", "recategorise", "publish")


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
    elif action == "publish":
        # an empty summary withdraws the published one
        try:
            service.publish_summary(session, ticket, actor, note, now=now)
        except ValueError as error:
            raise ActionRefused(str(error)) from None
    else:
        raise ActionRefused("未知的操作。")
    session.flush()
    return can_see(worker, ticket)


def chinese_part(error: Exception) -> str:
    """The Chinese half of a bilingual message ("中文。 / English.")."""
    return str(error).split(" / ", 1)[0]
