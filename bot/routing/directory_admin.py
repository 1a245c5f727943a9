"""The grid directory as admins manage it: what is loaded; upload, preview, apply.

An upload is checked and imported exactly like ``python -m bot grids import``
(bot.routing.directory: size limit, no YAML anchors/aliases, every problem
listed, nothing written unless the whole file is valid). Uploading only
previews: the file is kept in the shared state
(bot.coordination.pending_uploads; in-process, or Redis with several web
processes) under a random id, bound to the admin who uploaded it, for half an hour;
"apply" imports that very file, and only if the directory has not changed since
the preview (its revision), so what was previewed is what happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

MAX_UPLOAD = 512 * 1024

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
    text: str = ""  # what was checked (kept for "apply")
    rows: list[ChangeRow] = field(default_factory=list)  # the changes as the page lists them


def preview_directory(session: Session, text: str) -> Preview:
    """What importing `text` would change; DirectoryError when it is not valid."""
    directory = parse_directory(text)
    changes = diff_directory(session, directory)
    return Preview(
        changes=changes,
        revision=directory_revision(session),
        communities=len(directory.communities),
        grids=len(directory.grids),
        text=text,
        rows=change_rows(changes),
    )


def preview_upload(session: Session, raw: bytes) -> Preview:
    """`preview_directory` of uploaded bytes (DirectoryError: not a valid directory)."""
    return preview_directory(session, read_upload(raw))


class StalePreview(Exception):
    """The directory changed after the preview; the preview no longer tells the truth."""


def apply_upload(session: Session, text: str, revision: int) -> list[Change]:
    """Import `text` if the directory is still at `revision` (the preview's)."""
    if directory_revision(session) != revision:
        raise StalePreview()
    changes = apply_directory(session, parse_directory(text))
    # The new revision reaches every process's Locator; this one forgets its cache now.
    refresh_locator()
    return changes


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
