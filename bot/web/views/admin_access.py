"""Admins list and filter the staff access records (bot.access_log)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import access_log
from bot.web.db import run_db
from bot.web.views.admin import admin_only, local_tz, render


def _day(value: str, tz: ZoneInfo, errors: list[str], name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=tz)
    except ValueError:
        errors.append(f"{name}日期格式应为 2026-12-01。")
        return None


def parse_filter(query: dict[str, str], tz: ZoneInfo) -> tuple[access_log.AccessFilter, list[str]]:
    """The page's filter from its URL; unusable values are dropped and named."""
    errors: list[str] = []
    action = query.get("action", "")
    if action and action not in access_log.ACTIONS:
        errors.append("未知的操作类型。")
        action = ""
    since = _day(query.get("from", ""), tz, errors, "开始")
    until = _day(query.get("to", ""), tz, errors, "结束")
    return (
        access_log.AccessFilter(
            actor=query.get("actor", "").strip()[:100],
            action=action,
            target=query.get("target", "").strip()[:100],
            since=since,
            until=until + timedelta(days=1) if until else None,  # the end day included
        ),
        errors,
    )


@admin_only
async def access_page(request: web.Request) -> web.StreamResponse:
    tz = local_tz(request.app)
    where, errors = parse_filter(dict(request.query), tz)
    records = await run_db(request.app, lambda s: access_log.list_records(s, where), readonly=True)
    return render(
        request,
        "admin/access.html",
        {
            "records": records,
            "q": dict(request.query),
            "labels": access_log.ACTION_LABELS,
            "limit": access_log.PAGE_SIZE,
            "error": " ".join(errors),
        },
    )
