"""Admin console: the service guide (what is there; upload, preview, apply).

What the page shows and what an upload does is bot.guide.admin's.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.accounts import CurrentWorker
from bot.guide import admin as guide_admin
from bot.guide.book import GuideError
from bot.routing.directory_admin import PendingUploads
from bot.web.keys import SETTINGS, SHARED_STATE
from bot.web.views.admin import admin_only, render

PENDING = web.AppKey("admin.pending_guide", PendingUploads)
DONE_MESSAGES = {
    "cancelled": "已放弃这次上传，办事指南未做修改。",
    "applied": "办事指南已更新，居民再问时按新指南回答。",
}


def setup(app: web.Application) -> None:
    # In the shared state, so an apply reaching another web process finds the preview.
    app[PENDING] = PendingUploads(state=app[SHARED_STATE], kind="guide")


async def _page(
    request: web.Request,
    *,
    problems: list[str] | None = None,
    filename: str = "",
    error: str = "",
    message: str = "",
    status: int = 200,
) -> web.Response:
    directory = request.app[SETTINGS].guide_dir
    rows = await asyncio.to_thread(guide_admin.overview, directory)
    return render(
        request,
        "admin/guides.html",
        {
            "rows": rows,
            "problems": problems or [],
            "filename": filename,
            "error": error,
            "message": message,
            "max_kb": guide_admin.MAX_UPLOAD // 1024,
        },
        status=status,
    )


@admin_only
async def guides_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, message=DONE_MESSAGES.get(request.query.get("done", ""), ""))


@admin_only
async def guides_preview(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return await _page(request, error="请选择要上传的办事指南文件（YAML）。", status=400)
    filename = (upload.filename or "guide.yml")[:200]
    raw = upload.file.read(guide_admin.MAX_UPLOAD + 1)
    directory = request.app[SETTINGS].guide_dir
    try:
        preview = await asyncio.to_thread(guide_admin.preview, raw, directory)
    except GuideError as error:
        return await _page(
            request,
            problems=error.problems,
            filename=filename,
            error="文件未通过检查，办事指南没有任何修改。",
            status=400,
        )
    # the target file's name rides along with the text (filename field of the upload)
    upload_id = request.app[PENDING].add(worker.id, preview.file, preview.text, preview.revision)
    return render(
        request,
        "admin/guide_preview.html",
        {"preview": preview, "upload_id": upload_id, "filename": filename},
    )


@admin_only
async def guides_apply(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]
    form = await request.post()
    upload_id = str(form.get("upload", ""))[:64]
    pending = request.app[PENDING]
    target = request.app.router["admin_guides"].url_for()
    if form.get("cancel"):
        pending.discard(upload_id)
        raise web.HTTPSeeOther(target.with_query(done="cancelled"))
    item = pending.get(upload_id, worker.id)
    if item is None:
        return await _page(
            request, error="这次上传的预览已失效（超时或已应用），请重新上传文件。", status=409
        )
    directory = request.app[SETTINGS].guide_dir
    try:
        await asyncio.to_thread(
            guide_admin.apply, item.text, item.filename, item.revision, directory
        )
    except guide_admin.StaleGuide:
        pending.discard(upload_id)
        return await _page(
            request,
            error="预览之后该社区的办事指南已被修改（可能是其他管理员），请重新上传并核对。",
            status=409,
        )
    except GuideError as error:  # cannot happen: it was checked at upload
        pending.discard(upload_id)
        return await _page(
            request, problems=error.problems, error="文件未通过检查，没有修改。", status=400
        )
    pending.discard(upload_id)
    raise web.HTTPSeeOther(target.with_query(done="applied"))
