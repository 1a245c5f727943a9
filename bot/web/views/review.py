"""Admin pages: the review inbox (/admin/review) and insights (/admin/insights).

Admins only (403 for other roles, /login when logged out; CSRF on every POST
through bot.web.auth). The work is in bot.review; these handlers parse the
request, run it in a thread and render.

The inbox copies new messages of the conversation log before each page (for
at most INGEST_BUDGET seconds); a background task of the web app copies the
rest every `review_ingest_interval_seconds`, so a long backlog (first start,
an import) never makes a page slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot import access_log
from bot.review.export import SKIP_REASONS, ExportResult, export_reviewed
from bot.review.inbox import (
    ACTIONS,
    SORTS,
    STATUSES,
    DecideResult,
    DecisionRefused,
    InboxQuery,
    decide,
    inbox_view,
    intent_labels,
    undo,
)
from bot.review.ingest import LogCopier
from bot.review.insights import load_insights
from bot.taxonomy import get_taxonomy
from bot.web import auth
from bot.web.db import run_db
from bot.web.keys import CONVERSATION_LOG, ENGINE, SETTINGS
from bot.web.views.admin import admin_only, render

logger = logging.getLogger(__name__)


INGEST_BUDGET = 0.3  # seconds a page may spend copying new messages first
BACKGROUND_BATCHES = 50  # batches per background round (50,000 messages)

DONE_MESSAGES = {
    "confirm": "已确认",
    "relabel": "已改标",
    "suggested": "已采纳建议",
    "out_of_scope": "已标为超出范围",
    "dismiss": "已忽略",
    "undo": "已撤销审核",
}


# -- the background copy -------------------------------------------------------------

COPIER = web.AppKey("review.copier", LogCopier)


async def _copy_in_background(app: web.Application, interval: float) -> None:
    copier = app[COPIER]
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(copier.copy, app[ENGINE], None, BACKGROUND_BATCHES)
        except asyncio.CancelledError:
            raise
        except Exception:  # a locked or unreachable database: try again next round
            logger.warning("review inbox: copying the conversation log failed", exc_info=True)


async def review_ctx(app: web.Application) -> AsyncIterator[None]:
    app[COPIER] = LogCopier(app[CONVERSATION_LOG])
    interval = app[SETTINGS].review_ingest_interval_seconds
    task = asyncio.create_task(_copy_in_background(app, interval)) if interval > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup(app: web.Application) -> None:
    """Template helpers and the conversation log resource (call before the routes)."""
    env = aiohttp_jinja2.get_env(app)
    env.filters["review_percent"] = lambda value: f"{value * 100:.0f}%"
    env.globals["review_intent_labels"] = intent_labels(get_taxonomy())
    app.cleanup_ctx.append(review_ctx)


# -- handlers -----------------------------------------------------------------------------


def _url(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _done_message(query: Any) -> str:
    done = query.get("done", "")
    if done in DONE_MESSAGES:
        text = f"{DONE_MESSAGES[done]} {_int(query.get('groups'))} 组"
        if done != "undo":
            text += f"（{_int(query.get('messages'))} 条消息）"
        skipped = _int(query.get("skipped"))
        if skipped:
            text += f"；{skipped} 组未处理（已不在收件箱，或没有可用的标注）"
        return text + "。"
    if query.get("exported"):
        text = (
            f"已导出：reviewed.yml 现有 {_int(query.get('total'))} 条例句，"
            f"新增 {_int(query.get('added'))} 条"
        )
        skipped = _int(query.get("skipped"))
        if skipped:
            text += f"，{skipped} 条未导出（与训练数据或评估集重复等）"
        return text + "。"
    return ""


@admin_only
async def review_page(request: web.Request) -> web.StreamResponse:
    taxonomy = get_taxonomy()
    query = InboxQuery.from_params(request.query, taxonomy.all_intents)
    engine = request.app[ENGINE]
    error = ""
    copied = None
    try:
        copied = await asyncio.to_thread(request.app[COPIER].copy, engine, INGEST_BUDGET)
    except SQLAlchemyError as exc:  # the inbox still shows what it has
        logger.warning("review inbox: copying the conversation log failed: %s", exc)
        error = "读取对话记录失败，下面显示的是已导入的消息。"
    tz = request.app[SETTINGS].timezone

    acting = request["worker"]

    def read(session):
        # residents' own words: every opening of the inbox is recorded
        access_log.record(
            session,
            f"worker:{acting.id}",
            access_log.REVIEW_INBOX,
            target=request.rel_url.query_string[: access_log.MAX_TARGET] or None,
            actor_name=acting.name,
        )
        return inbox_view(session, query, tz, taxonomy)

    view = await run_db(request.app, read)
    behind = copied is not None and not copied.caught_up
    return render(
        request,
        "admin/review.html",
        {
            "page": view.page,
            "q": query,
            "grids": view.grids,
            "sorts": SORTS,
            "statuses": STATUSES,
            "actions": ACTIONS,
            "intents": taxonomy.all_intents,
            "ready": view.ready_to_export,
            "behind": behind,
            "back": urlencode(query.params()),
            "url": lambda **changes: _url("/admin/review", query.params(**changes)),
            "message": _done_message(request.query),
            "error": error,
        },
    )


def _back(form: Any, intents: Any) -> dict[str, str]:
    """The inbox's query to return to, rebuilt from its parameters (never a raw URL)."""
    params = dict(parse_qsl(str(form.get("back", ""))[:2000]))
    return InboxQuery.from_params(params, intents).params()


@admin_only
async def decide_action(request: web.Request) -> web.StreamResponse:
    worker: auth.CurrentWorker = request["worker"]
    taxonomy = get_taxonomy()
    form = await request.post()
    back = _back(form, taxonomy.all_intents)
    one = str(form.get("one", ""))
    if one:  # a row's own button: "<hash>:<action>"
        norm_hash, _, action = one.partition(":")
        hashes = [norm_hash]
        label = str(form.get(f"label_{norm_hash}", "")) or str(form.get("label", ""))
    else:
        action = str(form.get("action", ""))
        hashes = [str(h) for h in form.getall("group", [])]
        label = str(form.get("label", ""))
    if action not in ACTIONS:
        return auth.render_error(request, 400, "未知的审核操作。", "操作未完成")
    if not hashes:
        raise web.HTTPSeeOther(_url("/admin/review", back))
    if action == "relabel" and label not in taxonomy.all_intents:
        return auth.render_error(request, 400, "改标时请选择一个意图。", "操作未完成")
    try:
        result: DecideResult = await run_db(
            request.app,
            lambda s: decide(s, hashes, action, worker.actor, label=label or None),
        )
    except DecisionRefused as exc:
        return auth.render_error(request, 400, str(exc), "操作未完成")
    params = {
        **back,
        "done": action,
        "groups": str(result.groups),
        "messages": str(result.messages),
        "skipped": str(result.skipped),
    }
    raise web.HTTPSeeOther(_url("/admin/review", params))


@admin_only
async def undo_action(request: web.Request) -> web.StreamResponse:
    taxonomy = get_taxonomy()
    form = await request.post()
    back = _back(form, taxonomy.all_intents)
    one = str(form.get("one", ""))
    if one:  # a row's own button: "<hash>:undo"
        hashes = [one.partition(":")[0]]
    else:
        hashes = [str(h) for h in form.getall("group", [])]
    groups = await run_db(request.app, lambda s: undo(s, hashes)) if hashes else 0
    raise web.HTTPSeeOther(_url("/admin/review", {**back, "done": "undo", "groups": str(groups)}))


@admin_only
async def export_action(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    form = await request.post()
    engine = request.app[ENGINE]
    try:
        result: ExportResult = await asyncio.to_thread(
            export_reviewed, engine, settings.nlu_data_dir, settings.nlu_holdout_glob
        )
    except OSError as exc:  # e.g. data/nlu not writable by the web app's user
        logger.warning("review export failed: %s", exc)
        return auth.render_error(
            request, 409, f"导出失败：无法写入训练数据目录（{exc.strerror}）。"
        )
    target = "/admin/insights" if form.get("from") == "insights" else "/admin/review"
    params = {
        "exported": "1",
        "total": str(result.total),
        "added": str(result.added),
        "skipped": str(result.skipped),
    }
    raise web.HTTPSeeOther(_url(target, params))


@admin_only
async def insights_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    taxonomy = get_taxonomy()
    with contextlib.suppress(SQLAlchemyError):
        await asyncio.to_thread(request.app[COPIER].copy, request.app[ENGINE], INGEST_BUDGET)

    insights = await run_db(
        request.app,
        lambda s: load_insights(s, settings.nlu_data_dir, taxonomy),
        readonly=True,
    )
    return render(
        request,
        "admin/insights.html",
        {
            "i": insights,
            "ready": insights.ready_to_export,
            "skip_reasons": SKIP_REASONS,
            "message": _done_message(request.query),
        },
    )
