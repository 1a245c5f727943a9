"""What the admin dashboard shows: figures about tickets, queries only.

Every figure is about the tickets a `TicketFilter` selects: registered within
a date range (local days, inclusive), optionally of one community, grid and
category. The exception is the overdue list, which is about *now*: every
ticket currently past its deadline, whatever day it was registered (the date
range is ignored there, the other filters apply).

On time (against the SLA): a finished ticket (resolved or closed) is on time
when its last resolution came before its deadline and it was never escalated
by the escalation job for being overdue (escalation moves the deadline a full
window ahead, so the deadline alone would forgive it). A ticket still in
progress that has already missed a deadline counts as late; one still within
its deadline is not counted yet. Rate = on time / (finished + open and late).

Satisfaction: residents answer 满意 (the ticket closes with
``{"rating": "satisfied"}``) or 不满意 (it reopens with
``{"rating": "unsatisfied"}``); each answer counts once.

No aiohttp here: functions take a Session and plain values, so the web views,
the CLI and tests share them. The CSV export of the same tickets is
bot.tickets.export.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement

from bot.store.models import Community, Grid, Ticket, TicketEvent
from bot.taxonomy import get_taxonomy
from bot.tickets import display
from bot.tickets.state import IN_PROGRESS

__all__ = [
    "CountRow",
    "Dashboard",
    "FilterOptions",
    "OverdueRow",
    "Satisfaction",
    "SlaSummary",
    "TicketFilter",
    "Trend",
    "build_dashboard",
    "counts_by",
    "filter_options",
    "overdue_tickets",
    "parse_filter",
    "satisfaction",
    "sla_summary",
    "ticket_conditions",
    "trend",
]

DEFAULT_DAYS = 30
TREND_DAYS = 30
OVERDUE_LIMIT = 100
ESCALATION_ACTOR = "system:escalation"

FINISHED = ("resolved", "closed")
RUNNING = tuple(s.value for s in IN_PROGRESS)

NO_COMMUNITY = "（未确定社区）"
NO_GRID = "（未分网格）"


# -- filters -------------------------------------------------------------------


@dataclass(frozen=True)
class TicketFilter:
    """Which tickets: registered from `date_from` to `date_to` (local days,
    both inclusive; None = unbounded), of a community, grid and category."""

    date_from: date | None = None
    date_to: date | None = None
    community_id: int | None = None
    grid: str | None = None  # grid code
    category: str | None = None  # category code

    def query(self) -> dict[str, str]:
        """The URL query that gives this filter back through `parse_filter`."""
        params = {
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        if self.community_id is not None:
            params["community"] = str(self.community_id)
        if self.grid:
            params["grid"] = self.grid
        if self.category:
            params["category"] = self.category
        return params


def _parse_date(value: str, name: str, errors: list[str]) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"{name}“{value[:20]}”不是有效日期（格式：2024-01-31），已忽略。")
        return None


def parse_filter(
    params: Mapping[str, str], today: date, default_days: int = DEFAULT_DAYS
) -> tuple[TicketFilter, list[str]]:
    """A filter from URL query values, and what was wrong with them (Chinese).

    Without `from` and `to` the filter covers the last `default_days` days up to
    `today`; present but empty means unbounded. Bad values are dropped, never
    guessed at.
    """
    errors: list[str] = []
    if "from" not in params and "to" not in params:
        date_from: date | None = today - timedelta(days=default_days - 1)
        date_to: date | None = today
    else:
        date_from = _parse_date(params.get("from", ""), "开始日期", errors)
        date_to = _parse_date(params.get("to", ""), "结束日期", errors)
        if date_from and date_to and date_from > date_to:
            date_from, date_to = date_to, date_from
    community_id = None
    raw = params.get("community", "").strip()
    if raw:
        if raw.isdigit() and len(raw) < 10:
            community_id = int(raw)
        else:
            errors.append("社区筛选无效，已忽略。")
    grid = params.get("grid", "").strip()[:32] or None
    category = params.get("category", "").strip()[:32] or None
    if category and get_taxonomy().by_code(category) is None:
        errors.append("类别筛选无效，已忽略。")
        category = None
    return TicketFilter(date_from, date_to, community_id, grid, category), errors


def _day_start(day: date, tz: tzinfo) -> datetime:
    """Local midnight of `day` (an aware datetime; the column converts to UTC)."""
    return datetime.combine(day, time.min, tzinfo=tz)


def ticket_conditions(f: TicketFilter, tz: tzinfo, *, dates: bool = True) -> list[ColumnElement]:
    """WHERE conditions on Ticket for the filter (`dates=False`: ignore the range)."""
    conditions: list[ColumnElement] = []
    if dates and f.date_from is not None:
        conditions.append(Ticket.created_at >= _day_start(f.date_from, tz))
    if dates and f.date_to is not None:
        conditions.append(Ticket.created_at < _day_start(f.date_to + timedelta(days=1), tz))
    if f.community_id is not None:
        conditions.append(Ticket.community_id == f.community_id)
    if f.grid:
        grid_id = select(Grid.id).where(Grid.code == f.grid).scalar_subquery()
        conditions.append(Ticket.grid_id == grid_id)
    if f.category:
        conditions.append(Ticket.category_code == f.category)
    return conditions


@dataclass(frozen=True)
class FilterOptions:
    communities: list[tuple[int, str]]
    grids: list[tuple[str, str, str]]  # code, name, community
    categories: list[tuple[str, str]]  # code, label


def filter_options(session: Session) -> FilterOptions:
    communities = [
        (cid, name)
        for cid, name in session.execute(
            select(Community.id, Community.name).order_by(Community.name)
        )
    ]
    grids = [
        (code, name, community)
        for code, name, community in session.execute(
            select(Grid.code, Grid.name, Community.name)
            .join(Community, Grid.community_id == Community.id)
            .order_by(Community.name, Grid.code)
        )
    ]
    taxonomy = get_taxonomy()
    categories = [(c.code, c.label) for c in taxonomy.categories + taxonomy.internal]
    return FilterOptions(communities, grids, categories)


# -- tickets per category, community, grid ----------------------------------------


@dataclass(frozen=True)
class CountRow:
    key: str
    label: str
    total: int
    running: int  # still in progress
    overdue: int  # in progress and past the deadline now


def _count_columns(now: datetime) -> list:
    running = Ticket.status.in_(RUNNING)
    return [
        func.count(Ticket.id),
        func.coalesce(func.sum(case((running, 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(running, Ticket.due_at < now), 1), else_=0)), 0),
    ]


def counts_by(
    session: Session, f: TicketFilter, tz: tzinfo, dimension: str, now: datetime
) -> list[CountRow]:
    """Tickets per `dimension` ("category", "community" or "grid"), most first."""
    conditions = ticket_conditions(f, tz)
    counts = _count_columns(now)
    rows: list[CountRow] = []
    if dimension == "category":
        query = select(Ticket.category_code, *counts).group_by(Ticket.category_code)
        for code, total, running, overdue in session.execute(query.where(*conditions)):
            rows.append(CountRow(code, display.category_label(code), total, running, overdue))
    elif dimension == "community":
        query = (
            select(Community.id, Community.name, *counts)
            .select_from(Ticket)
            .outerjoin(Community, Ticket.community_id == Community.id)
            .group_by(Community.id, Community.name)
        )
        for cid, name, total, running, overdue in session.execute(query.where(*conditions)):
            rows.append(CountRow(str(cid or ""), name or NO_COMMUNITY, total, running, overdue))
    elif dimension == "grid":
        query = (
            select(Grid.code, Grid.name, *counts)
            .select_from(Ticket)
            .outerjoin(Grid, Ticket.grid_id == Grid.id)
            .group_by(Grid.code, Grid.name)
        )
        for code, name, total, running, overdue in session.execute(query.where(*conditions)):
            label = f"{code} {name}" if code else NO_GRID
            rows.append(CountRow(code or "", label, total, running, overdue))
    else:
        raise ValueError(f"unknown dimension {dimension!r}")
    rows.sort(key=lambda r: (-r.total, r.label))
    return rows


# -- SLA -------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaSummary:
    finished: int  # resolved or closed
    on_time: int  # finished within the deadline, never escalated for being late
    open_late: int  # in progress, a deadline already missed

    @property
    def finished_late(self) -> int:
        return self.finished - self.on_time

    @property
    def counted(self) -> int:
        return self.finished + self.open_late

    @property
    def late(self) -> int:
        return self.finished_late + self.open_late

    @property
    def rate(self) -> float | None:
        """On-time share (0..1), None when nothing counts yet."""
        return self.on_time / self.counted if self.counted else None


def _escalated_for_lateness() -> ColumnElement:
    return exists().where(
        TicketEvent.ticket_id == Ticket.id,
        TicketEvent.type == "escalated",
        TicketEvent.actor == ESCALATION_ACTOR,
    )


def resolved_at_subquery():
    return (
        select(TicketEvent.ticket_id, func.max(TicketEvent.at).label("resolved_at"))
        .where(TicketEvent.type == "resolved")
        .group_by(TicketEvent.ticket_id)
        .subquery("last_resolved")
    )


def sla_summary(session: Session, f: TicketFilter, tz: tzinfo, now: datetime) -> SlaSummary:
    resolved = resolved_at_subquery()
    late_escalation = _escalated_for_lateness()
    finished = Ticket.status.in_(FINISHED)
    on_time = and_(
        finished,
        ~late_escalation,
        or_(Ticket.due_at.is_(None), resolved.c.resolved_at <= Ticket.due_at),
    )
    open_late = and_(Ticket.status.in_(RUNNING), or_(Ticket.due_at < now, late_escalation))
    query = (
        select(
            func.coalesce(func.sum(case((finished, 1), else_=0)), 0),
            func.coalesce(func.sum(case((on_time, 1), else_=0)), 0),
            func.coalesce(func.sum(case((open_late, 1), else_=0)), 0),
        )
        .select_from(Ticket)
        .outerjoin(resolved, resolved.c.ticket_id == Ticket.id)
        .where(*ticket_conditions(f, tz))
    )
    total_finished, total_on_time, total_open_late = session.execute(query).one()
    return SlaSummary(int(total_finished), int(total_on_time), int(total_open_late))


# -- overdue now ------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueRow:
    number: str
    category: str
    community: str
    grid: str
    handler: str
    level: str
    status: str
    status_label: str
    due_at: datetime
    overdue_hours: float


def overdue_tickets(
    session: Session, f: TicketFilter, tz: tzinfo, now: datetime, limit: int = OVERDUE_LIMIT
) -> tuple[list[OverdueRow], int]:
    """Tickets in progress past their deadline now, most overdue first, and how
    many there are in all (the date range of `f` is ignored, see module doc)."""
    conditions = [
        Ticket.status.in_(RUNNING),
        Ticket.due_at < now,
        *ticket_conditions(f, tz, dates=False),
    ]
    total = session.execute(select(func.count(Ticket.id)).where(*conditions)).scalar_one()
    tickets = (
        session.execute(
            select(Ticket)
            .where(*conditions)
            .options(
                selectinload(Ticket.community).selectinload(Community.street),
                selectinload(Ticket.grid).selectinload(Grid.worker),
                selectinload(Ticket.assignee),
            )
            .order_by(Ticket.due_at, Ticket.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    rows = [
        OverdueRow(
            number=t.number,
            category=display.category_label(t.category_code),
            community=t.community.name if t.community else NO_COMMUNITY,
            grid=t.grid.code if t.grid else "",
            handler=display.handler_of(t),
            level=display.level_label(t.level),
            status=t.status,
            status_label=display.status_label(t.status),
            due_at=t.due_at,
            overdue_hours=(now - t.due_at).total_seconds() / 3600,
        )
        for t in tickets
    ]
    return rows, int(total)


# -- satisfaction ---------------------------------------------------------------------


@dataclass(frozen=True)
class Satisfaction:
    satisfied: int
    unsatisfied: int

    @property
    def answers(self) -> int:
        return self.satisfied + self.unsatisfied

    @property
    def rate(self) -> float | None:
        return self.satisfied / self.answers if self.answers else None


def satisfaction(session: Session, f: TicketFilter, tz: tzinfo) -> Satisfaction:
    rating = TicketEvent.data["rating"].as_string()
    # Grouped by type only: the WHERE pairs each type with its one rating (and
    # PostgreSQL would not group by a JSON expression with its own parameter).
    rows = session.execute(
        select(TicketEvent.type, func.count(TicketEvent.id))
        .join(Ticket, TicketEvent.ticket_id == Ticket.id)
        .where(
            or_(
                and_(TicketEvent.type == "closed", rating == "satisfied"),
                and_(TicketEvent.type == "reopened", rating == "unsatisfied"),
            ),
            *ticket_conditions(f, tz),
        )
        .group_by(TicketEvent.type)
    ).all()
    counts = {kind: int(n) for kind, n in rows}
    return Satisfaction(counts.get("closed", 0), counts.get("reopened", 0))


# -- trend -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    days: list[date]
    created: list[int]
    resolved: list[int]


def trend(
    session: Session, f: TicketFilter, tz: tzinfo, end: date, days: int = TREND_DAYS
) -> Trend:
    """Tickets registered and resolved per local day, the `days` days up to `end`
    (community, grid and category of `f` apply; its date range does not)."""
    first = end - timedelta(days=days - 1)
    start, stop = _day_start(first, tz), _day_start(end + timedelta(days=1), tz)
    conditions = ticket_conditions(f, tz, dates=False)
    created = Counter(
        at.astimezone(tz).date()
        for at in session.execute(
            select(Ticket.created_at).where(
                Ticket.created_at >= start, Ticket.created_at < stop, *conditions
            )
        ).scalars()
    )
    resolved = Counter(
        at.astimezone(tz).date()
        for at in session.execute(
            select(TicketEvent.at)
            .join(Ticket, TicketEvent.ticket_id == Ticket.id)
            .where(
                TicketEvent.type == "resolved",
                TicketEvent.at >= start,
                TicketEvent.at < stop,
                *conditions,
            )
        ).scalars()
    )
    all_days = [first + timedelta(days=i) for i in range(days)]
    return Trend(all_days, [created[d] for d in all_days], [resolved[d] for d in all_days])


# -- the whole dashboard ---------------------------------------------------------------------


@dataclass
class Dashboard:
    filter: TicketFilter
    total: int
    by_category: list[CountRow]
    by_community: list[CountRow]
    by_grid: list[CountRow]
    sla: SlaSummary
    satisfaction: Satisfaction
    overdue: list[OverdueRow]
    overdue_total: int
    trend: Trend
    options: FilterOptions = field(default_factory=lambda: FilterOptions([], [], []))


def build_dashboard(session: Session, f: TicketFilter, tz: tzinfo, now: datetime) -> Dashboard:
    """Everything the dashboard page shows, in one read-only transaction."""
    by_category = counts_by(session, f, tz, "category", now)
    overdue, overdue_total = overdue_tickets(session, f, tz, now)
    end = f.date_to or now.astimezone(tz).date()
    return Dashboard(
        filter=f,
        total=sum(r.total for r in by_category),
        by_category=by_category,
        by_community=counts_by(session, f, tz, "community", now),
        by_grid=counts_by(session, f, tz, "grid", now),
        sla=sla_summary(session, f, tz, now),
        satisfaction=satisfaction(session, f, tz),
        overdue=overdue,
        overdue_total=overdue_total,
        trend=trend(session, f, tz, end),
        options=filter_options(session),
    )
