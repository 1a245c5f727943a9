"""Admin console: the grid directory (what is loaded; upload, preview, apply).

The upload is checked and imported exactly like ``python -m bot grids import``
(bot.routing.directory: size limit, no YAML anchors/aliases, every problem
listed, nothing written unless the whole file is valid). Uploading only
previews: the file is kept in this process's memory under a random id, bound
to the admin who uploaded it, for `PENDING_TTL` seconds; "apply" imports that
very file, and only if the directory has not changed since the preview (its
revision), so what was previewed is what happens. A single web process is
assumed (as everywhere in the web app); with several, an apply reaching
another process is told to upload again, nothing worse.

The first half is plain functions (testable without HTTP), the handlers follow.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bot.routing.directory import (
    Change,
    DirectoryError,
    apply_directory,
    diff_directory,
    directory_revision,
    parse_directory,
)
from bot.routing.locator import refresh_locator
from bot.store.models import Community, Grid, GridBuilding
from bot.web.auth import CurrentWorker
from bot.web.db import run_db
from bot.web.views.admin import admin_only, render

MAX_UPLOAD = 512 * 1024
PENDING_TTL = 30 * 60
MAX_PENDING = 20

# -- what is loaded ------------------------------------------------------------------


@dataclass(frozen=True)
class GridRow:
    code: str
    name: str
    worker: str | None
    worker_phone: str | None
    worker_active: bool
    buildings: str
    households: int | None
    active: bool


@dataclass(frozen=True)
class CommunityRow:
    name: str
    street: str | None
    office: str | None
    active: bool
    grids: list[GridRow] = field(default_factory=list)


@dataclass(frozen=True)
class Overview:
    communities: list[CommunityRow]
    revision: int

    @property
    def grid_count(self) -> int:
        return sum(1 for c in self.communities for g in c.grids if g.active)


def building_ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    out: list[str] = []
    for n in sorted(set(numbers)):
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in out)


def directory_overview(session: Session) -> Overview:
    buildings: dict[int, list[int]] = {}
    for grid_id, number in session.execute(select(GridBuilding.grid_id, GridBuilding.building)):
        buildings.setdefault(grid_id, []).append(number)
    communities = (
        session.execute(
            select(Community)
            .options(
                selectinload(Community.street),
                selectinload(Community.grids).selectinload(Grid.worker),
            )
            .order_by(Community.active.desc(), Community.name)
        )
        .scalars()
        .all()
    )
    rows = []
    for c in communities:
        grids = [
            GridRow(
                code=g.code,
                name=g.name,
                worker=g.worker.name if g.worker else None,
                worker_phone=g.worker.phone if g.worker else None,
                worker_active=bool(g.worker.active) if g.worker else False,
                buildings=building_ranges(buildings.get(g.id, [])),
                households=g.households,
                active=bool(g.active),
            )
            for g in sorted(c.grids, key=lambda g: (not g.active, g.code))
        ]
        rows.append(
            CommunityRow(
                name=c.name,
                street=c.street.name if c.street else None,
                office=c.office_name,
                active=bool(c.active),
                grids=grids,
            )
        )
    return Overview(rows, directory_revision(session))


# -- upload, preview, apply ------------------------------------------------------------


def read_upload(raw: bytes) -> str:
    """The uploaded bytes as text, or DirectoryError (too big, empty, not UTF-8)."""
    if len(raw) > MAX_UPLOAD:
        raise DirectoryError([f"文件超过{MAX_UPLOAD // 1024} KB，请检查是否选错了文件"])
    if not raw.strip():
        raise DirectoryError(["文件是空的"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DirectoryError(["文件不是UTF-8编码（请用UTF-8保存后重新上传）"]) from None
    if "\x00" in text:
        raise DirectoryError(["文件含有二进制内容，不是YAML文本"])
    return text


@dataclass(frozen=True)
class Preview:
    changes: list[Change]
    revision: int
    communities: int
    grids: int


def preview_directory(session: Session, text: str) -> Preview:
    """What importing `text` would change; DirectoryError when it is not valid."""
    directory = parse_directory(text)
    return Preview(
        changes=diff_directory(session, directory),
        revision=directory_revision(session),
        communities=len(directory.communities),
        grids=len(directory.grids),
    )


class StalePreview(Exception):
    """The directory changed after the preview; the preview no longer tells the truth."""


def apply_upload(session: Session, text: str, revision: int) -> list[Change]:
    """Import `text` if the directory is still at `revision` (the preview's)."""
    if directory_revision(session) != revision:
        raise StalePreview()
    return apply_directory(session, parse_directory(text))


@dataclass(frozen=True)
class PendingUpload:
    id: str
    worker_id: int
    filename: str
    text: str
    revision: int
    created: float


class PendingUploads:
    """Previewed uploads waiting for "apply", in memory, short-lived."""

    def __init__(
        self,
        ttl: float = PENDING_TTL,
        max_items: int = MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self.clock = clock
        self._items: dict[str, PendingUpload] = {}
        self._lock = threading.Lock()

    def _expire(self) -> None:
        cutoff = self.clock() - self.ttl
        for key in [k for k, v in self._items.items() if v.created <= cutoff]:
            del self._items[key]

    def add(self, worker_id: int, filename: str, text: str, revision: int) -> str:
        with self._lock:
            self._expire()
            # One pending upload per admin: a new preview replaces the old one.
            for key in [k for k, v in self._items.items() if v.worker_id == worker_id]:
                del self._items[key]
            while len(self._items) >= self.max_items:
                del self._items[next(iter(self._items))]  # the oldest
            upload_id = secrets.token_urlsafe(18)
            self._items[upload_id] = PendingUpload(
                upload_id, worker_id, filename, text, revision, self.clock()
            )
            return upload_id

    def get(self, upload_id: str, worker_id: int) -> PendingUpload | None:
        """The upload, if it exists, has not expired and is this admin's."""
        with self._lock:
            self._expire()
            item = self._items.get(upload_id)
            return item if item is not None and item.worker_id == worker_id else None

    def discard(self, upload_id: str) -> None:
        with self._lock:
            self._items.pop(upload_id, None)


PENDING = web.AppKey("admin.pending_directory", PendingUploads)

# -- showing changes -------------------------------------------------------------------

ACTION_LABELS = {"add": "新增", "update": "修改", "deactivate": "停用"}
KIND_LABELS = {
    "street": "街道",
    "community": "社区",
    "worker": "网格员",
    "grid": "网格",
    "buildings": "楼栋",
}
FIELD_LABELS = {
    "name": "名称",
    "office_name": "办公室",
    "office_phone": "电话",
    "aliases": "别名",
    "wecom_userid": "企业微信账号",
    "wecom_webhook_key": "群机器人密钥",
    "households": "户数",
    "polygon": "范围（多边形）",
    "active": "启用",
    "community": "所属社区",
    "worker": "网格员",
    "street": "所属街道",
    "buildings": "楼栋",
}
SECRET_FIELDS = {"wecom_webhook_key"}


@dataclass(frozen=True)
class ChangeRow:
    action: str
    action_label: str
    kind_label: str
    key: str
    details: list[tuple[str, str, str]]  # field, old, new


def _shown(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "（无）"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(p, (list, tuple)) for p in value):
            return f"{len(value)}个点"
        return "、".join(str(v) for v in value)
    return str(value)


def change_rows(changes: list[Change]) -> list[ChangeRow]:
    rows = []
    for change in changes:
        details = []
        for name, (old, new) in change.fields.items():
            if name in SECRET_FIELDS:  # robot keys are secrets: say that, not what
                shown_old = "（已设置）" if old else "（无）"
                shown_new = "（新密钥）" if new else "（无）"
                details.append((FIELD_LABELS[name], shown_old, shown_new))
            else:
                details.append((FIELD_LABELS.get(name, name), _shown(old), _shown(new)))
        rows.append(
            ChangeRow(
                action=change.action,
                action_label=ACTION_LABELS.get(change.action, change.action),
                kind_label=KIND_LABELS.get(change.kind, change.kind),
                key=change.key,
                details=details,
            )
        )
    return rows


# -- handlers ------------------------------------------------------------------------------

DONE_MESSAGES = {"cancelled": "已放弃这次上传，网格目录未做修改。"}


def setup(app: web.Application) -> None:
    app[PENDING] = PendingUploads()


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
    worker: CurrentWorker = request["worker"]
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return await _directory_page(
            request, error="请选择要上传的网格目录文件（YAML）。", status=400
        )
    filename = (upload.filename or "directory.yml")[:200]
    raw = upload.file.read(MAX_UPLOAD + 1)
    try:
        text = read_upload(raw)
        preview = await run_db(request.app, lambda s: preview_directory(s, text), readonly=True)
    except DirectoryError as error:
        return await _directory_page(
            request,
            problems=error.problems,
            filename=filename,
            error="文件未通过检查，网格目录没有任何修改。",
            status=400,
        )
    upload_id = request.app[PENDING].add(worker.id, filename, text, preview.revision)
    return render(
        request,
        "admin/directory_preview.html",
        {
            "preview": preview,
            "rows": change_rows(preview.changes),
            "upload_id": upload_id,
            "filename": filename,
        },
    )


@admin_only
async def directory_apply(request: web.Request) -> web.StreamResponse:
    worker: CurrentWorker = request["worker"]
    form = await request.post()
    upload_id = str(form.get("upload", ""))[:64]
    pending = request.app[PENDING]
    if form.get("cancel"):
        pending.discard(upload_id)
        raise web.HTTPSeeOther(
            request.app.router["admin_directory"].url_for().with_query(done="cancelled")
        )
    item = pending.get(upload_id, worker.id)
    if item is None:
        return await _directory_page(
            request, error="这次上传的预览已失效（超时或已导入），请重新上传文件。", status=409
        )
    try:
        changes = await run_db(request.app, lambda s: apply_upload(s, item.text, item.revision))
    except StalePreview:
        pending.discard(upload_id)
        return await _directory_page(
            request,
            error="预览之后网格目录已被修改（可能是其他管理员导入的），请重新上传并核对变更。",
            status=409,
        )
    except DirectoryError as error:  # cannot happen: it was checked at upload
        pending.discard(upload_id)
        return await _directory_page(
            request, problems=error.problems, error="文件未通过检查，没有修改。", status=400
        )
    pending.discard(upload_id)
    # apply_directory changed the revision, which every process's Locator
    # notices; forget this process's cache now as well.
    refresh_locator()
    raise web.HTTPSeeOther(
        request.app.router["admin_directory"]
        .url_for()
        .with_query(done="applied", changes=str(len(changes)))
    )
