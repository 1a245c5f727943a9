"""The tickets of a dashboard filter as CSV (UTF-8 with BOM, for Excel).

Rows come page by page (`export_page`), so the web app can stream an export of
any size; every cell is made safe against formula injection (`safe_cell`).
The words in the cells are bot.tickets.display's. Personal data in the
address and the description (phones, ID and bank card numbers, rooms) is
masked (bot.privacy.masking) unless an admin asked for the full export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.privacy.masking import mask
from bot.store.models import Community, Grid, Ticket
from bot.tickets import display
from bot.tickets.stats import FINISHED, TicketFilter, resolved_at_subquery, ticket_conditions

EXPORT_PAGE = 1000

CSV_BOM = "\ufeff"  # Excel reads UTF-8 (Chinese) correctly only with it
CSV_COLUMNS = (
    "工单编号",
    "登记时间",
    "类别",
    "状态",
    "级别",
    "社区",
    "网格",
    "处理人",
    "办理时限",
    "办结时间",
    "地址",
    "描述",
)
# A cell starting with one of these is a formula to Excel and LibreOffice
# (tab and carriage return as well, per OWASP's CSV injection advice).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell as text, with a leading ' when a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def export_page(
    session: Session,
    f: TicketFilter,
    tz: tzinfo,
    after_id: int = 0,
    limit: int = EXPORT_PAGE,
    full: bool = False,
) -> tuple[list[list[str]], int | None]:
    """Up to `limit` CSV rows of tickets with id > `after_id`, oldest first, and
    the id to continue after (None: that was the last page). Personal data is
    masked unless `full`."""
    shown = (lambda text: text) if full else mask
    resolved = resolved_at_subquery()

    def local(value: datetime | None) -> str:
        return display.staff_time(value, tz)

    result = session.execute(
        select(Ticket, resolved.c.resolved_at)
        .outerjoin(resolved, resolved.c.ticket_id == Ticket.id)
        .where(Ticket.id > after_id, *ticket_conditions(f, tz))
        .options(
            selectinload(Ticket.community).selectinload(Community.street),
            selectinload(Ticket.grid).selectinload(Grid.worker),
            selectinload(Ticket.assignee),
        )
        .order_by(Ticket.id)
        .limit(limit)
    ).all()
    rows = []
    for ticket, resolved_at in result:
        finished = ticket.status in FINISHED
        rows.append(
            [
                ticket.number,
                local(ticket.created_at),
                display.category_label(ticket.category_code),
                display.status_label(ticket.status),
                display.level_label(ticket.level),
                ticket.community.name if ticket.community else "",
                ticket.grid.code if ticket.grid else "",
                display.handler_of(ticket),
                local(ticket.due_at),
                local(resolved_at) if finished else "",
                shown(display.address_of(ticket)),
                shown(ticket.description or ""),
            ]
        )
    last = result[-1][0].id if len(result) == limit else None
    return rows, last


def csv_text(rows: Iterable[Sequence[object]], header: bool = False) -> str:
    """CSV lines (CRLF, every cell made safe); with `header`, BOM and column names first."""
    buffer = io.StringIO()
    if header:
        buffer.write(CSV_BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()


def tickets_csv(session: Session, f: TicketFilter, tz: tzinfo, full: bool = False) -> str:
    """The whole export as one string (the web view streams it page by page)."""
    parts = [csv_text([], header=True)]
    after: int | None = 0
    while after is not None:
        rows, after = export_page(session, f, tz, after_id=after, limit=EXPORT_PAGE, full=full)
        parts.append(csv_text(rows))
    return "".join(parts)
