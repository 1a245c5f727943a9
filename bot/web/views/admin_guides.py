"""Admin console: the service guide (what is there; upload, preview, apply).

What the page shows and what an upload does is bot.guide.admin's.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.coordination.pending_uploads import PendingUploads
from bot.guide import admin as guide_admin
from bot.guide.book import GuideError
from bot.web.keys import SETTINGS, SHARED_STATE
from bot.web.views.admin import admin_only, render
from bot.web.views.admin_uploads import UploadFlow, UploadWords

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


FLOW = UploadFlow(
    pending=PENDING,
    route="admin_guides",
    page=_page,
    words=UploadWords(
        choose_file="请选择要上传的办事指南文件（YAML）。",
        refused="文件未通过检查，办事指南没有任何修改。",
        expired="这次上传的预览已失效（超时或已应用），请重新上传文件。",
        stale="预览之后该社区的办事指南已被修改（可能是其他管理员），请重新上传并核对。",
    ),
    max_bytes=guide_admin.MAX_UPLOAD,
    default_filename="guide.yml",
    refusal=GuideError,
    stale=guide_admin.StaleGuide,
)


@admin_only
async def guides_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, message=DONE_MESSAGES.get(request.query.get("done", ""), ""))


@admin_only
async def guides_preview(request: web.Request) -> web.StreamResponse:
    directory = request.app[SETTINGS].guide_dir
    checked = await FLOW.check(
        request, lambda raw: asyncio.to_thread(guide_admin.preview, raw, directory)
    )
    if isinstance(checked, web.Response):
        return checked
    filename, preview = checked
    # the target file's name rides along with the text (filename field of the upload)
    upload_id = FLOW.keep(request, preview.file, preview.text, preview.revision)
    return render(
        request,
        "admin/guide_preview.html",
        {"preview": preview, "upload_id": upload_id, "filename": filename},
    )


@admin_only
async def guides_apply(request: web.Request) -> web.StreamResponse:
    directory = request.app[SETTINGS].guide_dir
    applied = await FLOW.apply(
        request,
        lambda item: asyncio.to_thread(
            guide_admin.apply, item.text, item.filename, item.revision, directory
        ),
    )
    if isinstance(applied, web.Response):
        return applied
    raise FLOW.done(request, "applied")
