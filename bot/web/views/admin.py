"""The admin console: shared pieces, the dashboard and the ticket CSV export.

Every admin page and action uses `admin_only` (logged out: to /login; logged
in without the admin role: 403; unsafe requests need the CSRF token). The
figures come from bot.tickets.stats, the CSV from bot.tickets.export; the
directory and people pages are in admin_directory.py and admin_people.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from bot import access_log
from bot.accounts import CurrentWorker
from bot.store.models import utcnow
from bot.tickets import export, stats
from bot.web import auth
from bot.web.charts import COLORS, Series, bar_chart, line_chart
from bot.web.db import run_db
from bot.web.keys import SETTINGS

ADMIN_ROLES = ("admin",)
admin_only: Callable = auth.login_required(roles=ADMIN_ROLES)

# The console's sections, shown in its tab bar when their page is registered
# (review and models pages are added by other parts of the console).
SECTIONS = (
    ("/admin", "概览"),
    ("/admin/directory", "网格目录"),
    ("/admin/people", "人员"),
    ("/admin/keys", "接口密钥"),
    ("/admin/review", "标注审核"),
    ("/admin/insights", "训练数据分析"),
    ("/admin/models", "模型"),
    ("/admin/access", "访问记录"),
)

BAR_LIMIT = 20  # bars per chart; the table below it lists all


def local_tz(app: web.Application) -> ZoneInfo:
    return ZoneInfo(app[SETTINGS].timezone)


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """An admin page with the staff pages' security headers.

    `message` and `error` are shown below the console's tabs (admin/layout.html)
    rather than above them (base.html).
    """
    context = dict(context)
    context["admin_message"] = context.pop("message", "")
    context["admin_error"] = context.pop("error", "")
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    return auth.page_headers(response)


def admin_sections(request: web.Request) -> list[tuple[str, str, bool]]:
    """(path, label, current) of the sections whose page exists."""
    paths = {
        info.get("path")
        for resource in request.app.router.resources()
        for info in (resource.get_info(),)
    }
    current = request.path
    out = []
    for path, label in SECTIONS:
        if path not in paths:
            continue
        here = current == path or (path != "/admin" and current.startswith(path + "/"))
        out.append((path, label, here))
    return out


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def setup(app: web.Application) -> None:
    """Template helpers of the admin pages (call once, before the routes)."""
    env = aiohttp_jinja2.get_env(app)
    env.filters["admin_percent"] = percent
    env.filters["admin_without"] = lambda params, key: {k: v for k, v in params.items() if k != key}
    env.globals["admin_sections"] = admin_sections


# -- dashboard ---------------------------------------------------------------------


def _charts(data: stats.Dashboard) -> dict[str, Any]:
    def bars(rows: list[stats.CountRow], title: str, color: str) -> Any:
        return bar_chart([(r.label, r.total) for r in rows[:BAR_LIMIT]], title=title, color=color)

    trend = data.trend
    return {
        "category": bars(data.by_category, "各类别工单数", COLORS[0]),
        "community": bars(data.by_community, "各社区工单数", COLORS[4]),
        "grid": bars(data.by_grid, "各网格工单数", COLORS[5]),
        "trend": line_chart(
            [d.strftime("%m-%d") for d in trend.days],
            [
                Series("新登记", trend.created, COLORS[0]),
                Series("办结", trend.resolved, COLORS[1]),
            ],
            title=f"近{len(trend.days)}天登记与办结趋势",
        ),
    }


def _filter_and_time(request: web.Request) -> tuple[stats.TicketFilter, list[str], Any, Any]:
    tz = local_tz(request.app)
    now = utcnow()
    f, errors = stats.parse_filter(request.query, now.astimezone(tz).date())
    return f, errors, tz, now


@admin_only
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    f, errors, tz, now = _filter_and_time(request)
    data = await run_db(request.app, lambda s: stats.build_dashboard(s, f, tz, now), readonly=True)
    return render(
        request,
        "admin/dashboard.html",
        {
            "d": data,
            "f": f,
            "charts": _charts(data),
            "query": f.query(),
            "error": " ".join(errors),
            "now": now,
        },
    )


@admin_only
async def tickets_csv(request: web.Request) -> web.StreamResponse:
    """The tickets of the dashboard's filter as CSV, streamed page by page;
    personal data masked unless `full=1` (each export recorded, which one too)."""
    f, _errors, tz, now = _filter_and_time(request)
    full = request.query.get("full") == "1"
    acting: CurrentWorker = request["worker"]
    await run_db(
        request.app,
        lambda s: access_log.record(
            s,
            f"worker:{acting.id}",
            access_log.CSV_EXPORT_FULL if full else access_log.CSV_EXPORT,
            target="&".join(f"{k}={v}" for k, v in f.query().items() if v) or "全部",
            actor_name=acting.name,
            now=now,
        ),
    )
    stamp: datetime = now.astimezone(tz)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="tickets-{stamp:%Y%m%d-%H%M}.csv"',
        }
    )
    auth.page_headers(response)
    await response.prepare(request)
    await response.write(export.csv_text([], header=True).encode("utf-8"))
    after: int | None = 0
    while after is not None:
        rows, after = await run_db(
            request.app,
            lambda s, start=after: export.export_page(
                s, f, tz, after_id=start, limit=export.EXPORT_PAGE, full=full
            ),
            readonly=True,
        )
        await response.write(export.csv_text(rows).encode("utf-8"))
    await response.write_eof()
    return response
