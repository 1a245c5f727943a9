"""Admin console: the grid directory page (what is loaded; upload, preview, apply).

What the page shows and what an upload does is bot.routing.directory_admin's.
"""

from __future__ import annotations

from aiohttp import web

from bot.coordination.pending_uploads import PendingUploads
from bot.routing.directory import DirectoryError
from bot.routing.directory_admin import (
    MAX_UPLOAD,
    StalePreview,
    apply_upload,
    directory_overview,
    preview_upload,
)
from bot.web.db import run_db
from bot.web.keys import SHARED_STATE
from bot.web.views.admin import admin_only, render
from bot.web.views.admin_uploads import UploadFlow, UploadWords

PENDING = web.AppKey("admin.pending_directory", PendingUploads)

# -- handlers ------------------------------------------------------------------------------

DONE_MESSAGES = {"cancelled": "已放弃这次上传，网格目录未做修改。"}


def setup(app: web.Application) -> None:
    app[PENDING] = PendingUploads(state=app[SHARED_STATE])


async def _directory_page(
    request: web.Request,
    *,
    problems: list[str] | None = None,
    filename: str = "",
    error: str = "",
    message: str = "",
    status: int = 200,
) -> web.Response:
    overview = await run_db(request.app, directory_overview, readonly=True)
    return render(
        request,
        "admin/directory.html",
        {
            "overview": overview,
            "problems": problems or [],
            "filename": filename,
            "error": error,
            "message": message,
            "max_kb": MAX_UPLOAD // 1024,
        },
        status=status,
    )


FLOW = UploadFlow(
    pending=PENDING,
    route="admin_directory",
    page=_directory_page,
    words=UploadWords(
        choose_file="请选择要上传的网格目录文件（YAML）。",
        refused="文件未通过检查，网格目录没有任何修改。",
        expired="这次上传的预览已失效（超时或已导入），请重新上传文件。",
        stale="预览之后网格目录已被修改（可能是其他管理员导入的），请重新上传并核对变更。",
    ),
    max_bytes=MAX_UPLOAD,
    default_filename="directory.yml",
    refusal=DirectoryError,
    stale=StalePreview,
)


@admin_only
async def directory_page(request: web.Request) -> web.StreamResponse:
    message = DONE_MESSAGES.get(request.query.get("done", ""), "")
    if request.query.get("done") == "applied":
        count = request.query.get("changes", "")
        count = count if count.isdigit() else "0"
        message = (
            f"网格目录已导入：{count}项变更已生效，新工单按新目录分派。"
            if count != "0"
            else "网格目录已导入：与现有目录相同，没有变更。"
        )
    return await _directory_page(request, message=message)


@admin_only
async def directory_preview(request: web.Request) -> web.StreamResponse:
    checked = await FLOW.check(
        request, lambda raw: run_db(request.app, lambda s: preview_upload(s, raw), readonly=True)
    )
    if isinstance(checked, web.Response):
        return checked
    filename, preview = checked
    upload_id = FLOW.keep(request, filename, preview.text, preview.revision)
    return render(
        request,
        "admin/directory_preview.html",
        {
            "preview": preview,
            "rows": preview.rows,
            "upload_id": upload_id,
            "filename": filename,
        },
    )


@admin_only
async def directory_apply(request: web.Request) -> web.StreamResponse:
    changes = await FLOW.apply(
        request,
        lambda item: run_db(request.app, lambda s: apply_upload(s, item.text, item.revision)),
    )
    if isinstance(changes, web.Response):
        return changes
    raise FLOW.done(request, "applied", changes=str(len(changes)))
