"""Uploading the grid directory: preview, apply, and every kind of bad file."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.coordination import SharedState
from bot.coordination.pending_uploads import PendingUploads
from bot.routing import directory_admin
from bot.routing.directory import apply_directory, directory_revision, parse_directory
from bot.routing.directory_admin import read_upload
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.store.models import Community, Grid, GridBuilding, Ticket, Worker
from bot.web.views.admin_directory import PENDING
from tests.web.conftest import ADMIN_PASSWORD, DEMO_FILE, WebClient, add_ticket


def stored_uploads(app: web.Application) -> list[str]:
    """Previews held in the app's (in-process) shared state."""
    state = app[PENDING].state
    return [key for key in state._items if key.startswith("directory-upload:")]  # type: ignore[attr-defined]


DEMO = DEMO_FILE.read_text(encoding="utf-8")
UPLOAD_RE = re.compile(r'name="upload" value="([^"]+)"')


def demo() -> dict[str, Any]:
    return yaml.safe_load(DEMO)


def dump(data: dict[str, Any]) -> bytes:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).encode("utf-8")


def changed_directory() -> bytes:
    """The demo with a new grid, a new worker for HPXC-03, and YY-03 gone."""
    data = demo()
    hpxc, yy = data["communities"]
    hpxc["grids"][2]["worker"] = {"name": "马超", "phone": "13800000099"}
    hpxc["grids"].append(
        {
            "code": "HPXC-05",
            "name": "和平新村第五网格",
            "buildings": ["30-31"],
            "worker": {"name": "黄蓉", "phone": "13800000098"},
        }
    )
    yy["grids"] = [g for g in yy["grids"] if g["code"] != "YY-03"]
    return dump(data)


def duplicate_codes() -> bytes:
    data = demo()
    data["communities"][1]["grids"][0]["code"] = "HPXC-01"
    return dump(data)


def overlapping_buildings() -> bytes:
    data = demo()
    data["communities"][0]["grids"][1]["buildings"] = ["5-14"]  # HPXC-01 has 1-6
    return dump(data)


BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
communities: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""

BAD_FILES = {
    "wrong YAML": (b"street: x\ncommunities: [\n  - name: {broken\n", "not valid YAML"),
    "duplicate grid codes": (duplicate_codes(), "grid HPXC-01: duplicate grid code"),
    "overlapping buildings": (overlapping_buildings(), "building 5 is also in grid HPXC-01"),
    "YAML bomb": (BILLION_LAUGHS, "anchors and aliases"),
    "duplicate keys": (
        DEMO.replace("street: 建筑新村街道\n", "street: 建筑新村街道\nstreet: 另一个\n").encode(),
        "duplicate key 'street'",
    ),
    "not a mapping": (b"- a\n- b\n", "file: must be a mapping"),
    "too big": (b"# " + b"x" * (600 * 1024) + b"\n" + DEMO.encode(), "文件超过512 KB"),
    "not UTF-8": (DEMO.encode("gb18030"), "不是UTF-8"),
    "empty": (b"  \n", "文件是空的"),
    "binary": (b"\x00\x01\x02street: x", "二进制"),
}


def snapshot(engine: Engine) -> tuple:
    """Everything an import could change."""
    with session_scope(engine, readonly=True) as s:
        return (
            tuple(s.execute(select(Community.name, Community.active).order_by(Community.id))),
            tuple(
                s.execute(
                    select(Grid.code, Grid.name, Grid.active, Grid.worker_id).order_by(Grid.id)
                )
            ),
            tuple(s.execute(select(Worker.phone, Worker.name).order_by(Worker.id))),
            tuple(
                s.execute(
                    select(
                        GridBuilding.community_id, GridBuilding.building, GridBuilding.grid_id
                    ).order_by(GridBuilding.id)
                )
            ),
            directory_revision(s),
        )


async def upload(
    client: WebClient, content: bytes, filename: str = "grids.yml"
) -> aiohttp.ClientResponse:
    token = await client.csrf("/admin/directory")
    form = aiohttp.FormData()
    form.add_field("csrf_token", token)
    form.add_field("file", content, filename=filename, content_type="application/x-yaml")
    return await client.post("/admin/directory/preview", data=form, allow_redirects=False)


async def apply(client: WebClient, upload_id: str, **extra: str) -> aiohttp.ClientResponse:
    return await client.post_form("/admin/directory/apply", {"upload": upload_id, **extra})


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


# -- the good path ---------------------------------------------------------------------------


async def test_directory_page_shows_what_is_loaded(admin_client: WebClient) -> None:
    response = await admin_client.get("/admin/directory")
    assert response.status == 200
    text = text_of(await response.text())
    assert "2个社区，7个启用的网格" in text
    assert "HPXC-01" in text and "王芳" in text and "1-6, 8" in text


async def test_upload_previews_then_applies_and_the_locator_follows(
    admin_client: WebClient, web_engine: Engine, web_app: web.Application
) -> None:
    with session_scope(web_engine, readonly=True) as s:
        assert get_locator(s).locate_text("和平新村30号楼").grid is None  # cached now
    before = snapshot(web_engine)

    response = await upload(admin_client, changed_directory())
    assert response.status == 200
    html = await response.text()
    text = text_of(html)
    assert "新增" in text and "HPXC-05" in text
    assert "停用" in text and "YY-03" in text
    assert "马超 (13800000099)" in text  # HPXC-03's new worker
    assert snapshot(web_engine) == before  # a preview changes nothing
    upload_id = UPLOAD_RE.search(html).group(1)

    response = await apply(admin_client, upload_id)
    assert response.status == 303
    assert response.headers["Location"].startswith("/admin/directory?done=applied&changes=")
    page = await admin_client.get(response.headers["Location"])
    assert "网格目录已导入" in await page.text()

    with session_scope(web_engine, readonly=True) as s:
        grids = {g.code: g for g in s.execute(select(Grid)).scalars()}
        assert grids["HPXC-05"].active and grids["HPXC-05"].worker.name == "黄蓉"
        assert not grids["YY-03"].active
        assert grids["HPXC-03"].worker.phone == "13800000099"
        located = get_locator(s).locate_text("和平新村30号楼")
        assert located.grid == "HPXC-05"
    number = add_ticket(web_engine, "和平新村30号楼1单元101")
    with session_scope(web_engine, readonly=True) as s:
        ticket = s.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        assert ticket.grid.code == "HPXC-05" and ticket.assignee.name == "黄蓉"

    # the upload is used up: applying it again is refused
    again = await apply(admin_client, upload_id)
    assert again.status == 409 and "已失效" in await again.text()
    assert not stored_uploads(web_app)


async def test_uploading_the_same_directory_changes_nothing(
    admin_client: WebClient, web_engine: Engine
) -> None:
    before = snapshot(web_engine)
    response = await upload(admin_client, DEMO.encode("utf-8"))
    html = await response.text()
    assert "不会产生任何变更" in html
    response = await apply(admin_client, UPLOAD_RE.search(html).group(1))
    assert response.status == 303 and response.headers["Location"].endswith("changes=0")
    assert snapshot(web_engine) == before


# -- bad files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(BAD_FILES))
async def test_bad_files_are_refused_with_their_problems(
    kind: str, admin_client: WebClient, web_engine: Engine, web_app: web.Application
) -> None:
    content, problem = BAD_FILES[kind]
    before = snapshot(web_engine)
    response = await upload(admin_client, content, filename="<b>evil</b>.yml")
    assert response.status == 400
    html = await response.text()
    assert "未导入" in html and "没有任何修改" in html
    assert problem in text_of(html)
    assert "<b>evil</b>" not in html  # the file name is escaped
    assert 'name="upload"' not in html  # nothing to apply
    assert not stored_uploads(web_app)
    assert snapshot(web_engine) == before


async def test_a_body_over_the_app_limit_is_refused(
    admin_client: WebClient, web_engine: Engine
) -> None:
    before = snapshot(web_engine)
    response = await upload(admin_client, b"#" * (1100 * 1024))
    assert response.status == 413
    assert snapshot(web_engine) == before


async def test_upload_without_a_file(admin_client: WebClient) -> None:
    response = await admin_client.post_form("/admin/directory/preview", {"file": "not a file"})
    assert response.status == 400
    assert "请选择要上传的网格目录文件" in await response.text()


# -- previews that no longer hold ---------------------------------------------------------------


async def test_apply_is_refused_when_the_directory_changed_after_the_preview(
    admin_client: WebClient, web_engine: Engine
) -> None:
    response = await upload(admin_client, changed_directory())
    upload_id = UPLOAD_RE.search(await response.text()).group(1)
    data = demo()
    data["communities"][0]["grids"][0]["name"] = "和平新村一网格（改名）"
    with session_scope(web_engine) as s:  # another admin imports meanwhile
        apply_directory(s, parse_directory(dump(data).decode()))
    before = snapshot(web_engine)
    response = await apply(admin_client, upload_id)
    assert response.status == 409
    assert "预览之后网格目录已被修改" in await response.text()
    assert snapshot(web_engine) == before


async def test_an_upload_belongs_to_the_admin_who_previewed_it(
    admin_client: WebClient, client_factory, web_engine: Engine
) -> None:
    from bot.accounts import add_person

    with session_scope(web_engine) as s:
        add_person(s, "第二管理员", "admin2", "admin", password=ADMIN_PASSWORD)
    other: WebClient = await client_factory()
    assert (await other.login("admin2", ADMIN_PASSWORD)).status == 303

    response = await upload(admin_client, changed_directory())
    upload_id = UPLOAD_RE.search(await response.text()).group(1)
    before = snapshot(web_engine)
    response = await apply(other, upload_id)
    assert response.status == 409
    assert snapshot(web_engine) == before
    assert (await apply(admin_client, upload_id)).status == 303  # still the owner's


async def test_cancel_discards_the_upload(admin_client: WebClient, web_engine: Engine) -> None:
    response = await upload(admin_client, changed_directory())
    upload_id = UPLOAD_RE.search(await response.text()).group(1)
    before = snapshot(web_engine)
    response = await apply(admin_client, upload_id, cancel="1")
    assert response.status == 303 and response.headers["Location"].endswith("done=cancelled")
    assert (await apply(admin_client, upload_id)).status == 409
    assert snapshot(web_engine) == before


def test_pending_uploads_expire_and_are_bounded() -> None:
    clock = [0.0]
    pending = PendingUploads(ttl=60, clock=lambda: clock[0])
    first = pending.add(1, "a.yml", "x", 0)
    assert pending.get(first, 1).text == "x"
    assert pending.get(first, 2) is None  # another admin
    second = pending.add(1, "b.yml", "y", 0)
    assert pending.get(first, 1) is None  # replaced by the admin's newer upload
    third = pending.add(2, "c.yml", "z", 0)
    assert pending.get(second, 1).text == "y" and pending.get(third, 2).text == "z"
    clock[0] = 61  # expired
    assert pending.get(third, 2) is None


def test_an_upload_previewed_on_one_process_is_applied_on_another(
    shared_state: SharedState,
) -> None:
    previewed_on = PendingUploads(state=shared_state)
    applied_on = PendingUploads(state=shared_state)
    upload_id = previewed_on.add(7, "grids.yml", "street: x", 3)
    item = applied_on.get(upload_id, 7)
    assert item is not None and (item.text, item.revision, item.filename) == (
        "street: x",
        3,
        "grids.yml",
    )
    assert applied_on.get(upload_id, 8) is None  # bound to the admin who previewed it
    applied_on.discard(upload_id)
    assert previewed_on.get(upload_id, 7) is None


def test_a_pending_guide_never_replaces_a_pending_directory_upload(
    shared_state: SharedState,
) -> None:
    directories = PendingUploads(state=shared_state)
    guides = PendingUploads(state=shared_state, kind="guide")
    directory_upload = directories.add(7, "grids.yml", "street: x", 3)
    guide_upload = guides.add(7, "heping.yml", "community: y", 1)
    assert directories.get(directory_upload, 7) is not None
    assert guides.get(guide_upload, 7) is not None
    assert guides.get(directory_upload, 7) is None  # each kind reads only its own


def test_read_upload() -> None:
    assert read_upload("\ufeffstreet: x".encode()) == "street: x"  # BOM dropped
    with pytest.raises(directory_admin.DirectoryError):
        read_upload(b"x" * (directory_admin.MAX_UPLOAD + 1))
