"""Admin pages: retrain the assistant's model, compare, deploy, roll back.

Everything here is for admins only (403 for other roles). The work is done by
bot.training (registry, jobs, guard, deploy); these handlers run its blocking
calls in threads and render the results. Training runs in a runner process the
web app starts (`python -m bot nlu run-job`), so TensorFlow never loads here;
the job page polls `/admin/models/jobs/<id>.json` (static/admin-models.js).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from bot.tickets import display
from bot.training import jobs as training_jobs
from bot.training import pages
from bot.training.deploy import (
    DeployError,
    DeployRefused,
    RasaApi,
    deploy,
    rollback,
)
from bot.training.guard import MIN_REASON_LENGTH
from bot.training.jobs import Job, JobError, JobOptions
from bot.training.registry import NAME_RE, Registry, RegistryError
from bot.web import auth
from bot.web.keys import SETTINGS
from bot.web.views.admin import admin_only

logger = logging.getLogger(__name__)


# What the page's "start training" asks for; tests replace it (fake trainer).
TRAINING_OPTIONS = web.AppKey("models.training_options", JobOptions)
# Runner processes started by this web app: reaped when they end, stopped with it.
TRAINING_PROCESSES = web.AppKey("models.training_processes", list)

DONE_MESSAGES = {
    "deployed": "新模型已上线，正在运行的 Rasa 服务器已换用它，对话不受影响。",
    "rolled_back": "已回滚到上一个模型。",
}


# -- setup -----------------------------------------------------------------------


async def _stop_runners(app: web.Application) -> None:
    """A training started here stops with the web app (its job ends as failed and
    the serving model stays); a training started from the CLI is not ours."""
    for process in app[TRAINING_PROCESSES]:
        if process.poll() is None:
            process.terminate()
    for process in app[TRAINING_PROCESSES]:
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()


def setup(app: web.Application) -> None:
    app[TRAINING_OPTIONS] = JobOptions()
    app[TRAINING_PROCESSES] = []
    app.on_cleanup.append(_stop_runners)
    env = aiohttp_jinja2.get_env(app)
    tz = ZoneInfo(app[SETTINGS].timezone)

    def iso_local(value: str | None) -> str:
        """An ISO time of the registry in the app's time zone."""
        if not value:
            return ""
        try:
            return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value

    env.filters["iso_local"] = iso_local
    env.filters["actor_name"] = lambda actor: display.actor_label(actor or "")


def _registry(request: web.Request) -> Registry:
    return Registry.from_settings(request.app[SETTINGS])


def _api(request: web.Request) -> RasaApi:
    return RasaApi.from_settings(request.app[SETTINGS])


def _who(request: web.Request) -> str:
    worker: auth.CurrentWorker = request["worker"]
    return worker.actor


def _render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    context.setdefault("min_reason", MIN_REASON_LENGTH)
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    return auth.page_headers(response)


def _not_found(request: web.Request, what: str = "没有这个模型") -> web.Response:
    return auth.render_error(request, 404, what)


# -- handlers --------------------------------------------------------------------


@admin_only
async def models_page(request: web.Request) -> web.StreamResponse:
    page = await asyncio.to_thread(pages.overview, _registry(request), _api(request))
    message = DONE_MESSAGES.get(request.query.get("done", ""), "")
    return _render(request, "admin/models.html", {"page": page, "message": message})


def _reap(app: web.Application, process: subprocess.Popen) -> None:
    processes = app[TRAINING_PROCESSES]
    processes.append(process)

    def wait() -> None:
        process.wait()
        if process in processes:
            processes.remove(process)

    threading.Thread(target=wait, name=f"reap-{process.pid}", daemon=True).start()


@admin_only
async def start_training(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    defaults = request.app[TRAINING_OPTIONS]
    options = JobOptions.from_dict(
        {**defaults.to_dict(), "auto_deploy": bool(form.get("auto_deploy"))}
    )
    try:
        result = await asyncio.to_thread(
            training_jobs.start_job,
            _registry(request),
            request.app[SETTINGS],
            requested_by=_who(request),
            options=options,
        )
    except (JobError, OSError) as error:
        logger.exception("could not start a training job")
        return auth.render_error(request, 409, f"无法开始训练：{error}")
    if result.process is not None:
        _reap(request.app, result.process)
    target = request.app.router["admin_model_job"].url_for(job_id=result.job.id)
    if not result.started:
        target = target.with_query(attached="1")
    raise web.HTTPSeeOther(target)


async def _job(request: web.Request) -> Job | None:
    job_id = request.match_info["job_id"]
    if not training_jobs.JOB_ID_RE.match(job_id):
        return None
    return await asyncio.to_thread(training_jobs.read_job, _registry(request), job_id)


@admin_only
async def job_page(request: web.Request) -> web.StreamResponse:
    job = await _job(request)
    if job is None:
        return _not_found(request, "没有这个训练任务")
    message = ""
    if request.query.get("attached"):
        who = display.actor_label(job.requested_by)
        message = f"已有训练任务在运行（{who} 发起），没有另起一个：这就是它的进度。"
    return _render(
        request,
        "admin/models_job.html",
        {"job": job, "comparison": pages.comparison_of_job(job), "message": message},
    )


@admin_only
async def job_json(request: web.Request) -> web.StreamResponse:
    job = await _job(request)
    if job is None:
        return web.json_response({"error": "no such job"}, status=404)
    response = web.json_response(job.public_dict())
    response.headers["Cache-Control"] = "no-store"
    return response


async def _model_page(
    request: web.Request, name: str, *, error: str = "", status: int = 200, reason: str = ""
) -> web.Response:
    try:
        page = await asyncio.to_thread(pages.model_page, _registry(request), _api(request), name)
    except DeployError as failure:
        return auth.render_error(request, 502, f"无法查询 Rasa 服务器：{failure}")
    if page is None:
        return _not_found(request)
    return _render(
        request,
        "admin/models_detail.html",
        {
            "record": page.record,
            "current": page.current,
            "comparison": page.comparison,
            "error": error,
            "reason": reason,
        },
        status=status,
    )


def _name(request: web.Request) -> str | None:
    name = request.match_info["name"]
    return name if NAME_RE.match(name) else None


@admin_only
async def model_page(request: web.Request) -> web.StreamResponse:
    name = _name(request)
    if name is None:
        return _not_found(request)
    return await _model_page(request, name)


@admin_only
async def deploy_model(request: web.Request) -> web.StreamResponse:
    name = _name(request)
    if name is None:
        return _not_found(request)
    form = await request.post()
    reason = str(form.get("override_reason", "")).strip()
    try:
        await asyncio.to_thread(
            deploy,
            _registry(request),
            _api(request),
            name,
            by=_who(request),
            override_reason=reason or None,
        )
    except DeployRefused as refused:
        return await _model_page(
            request,
            name,
            error=f"拒绝上线：{refused}。如确需上线，请写明理由后强制上线。",
            status=409,
            reason=reason,
        )
    except (DeployError, RegistryError, TimeoutError) as error:
        return await _model_page(
            request, name, error=f"上线失败：{error}", status=409, reason=reason
        )
    raise web.HTTPSeeOther(request.app.router["admin_models"].url_for().with_query(done="deployed"))


@admin_only
async def rollback_model(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    reason = str(form.get("reason", "")).strip() or None
    try:
        await asyncio.to_thread(
            rollback, _registry(request), _api(request), by=_who(request), reason=reason
        )
    except (DeployError, TimeoutError) as error:
        return auth.render_error(request, 409, f"回滚失败：{error}")
    raise web.HTTPSeeOther(
        request.app.router["admin_models"].url_for().with_query(done="rolled_back")
    )
