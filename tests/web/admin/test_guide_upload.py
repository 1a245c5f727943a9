"""Admin console: the service guide (upload, preview, apply; broken files change nothing)."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from html import unescape
from pathlib import Path

import aiohttp
import pytest

from bot.guide import book
from bot.settings import PROJECT_ROOT, Settings
from tests.web.conftest import WebClient

DEMO = PROJECT_ROOT / "data" / "guides"
UPLOAD_RE = re.compile(r'name="upload" value="([^"]+)"')


@pytest.fixture
def guide_dir(tmp_path: Path) -> Path:
    target = tmp_path / "guides"
    shutil.copytree(DEMO, target)
    return target


@pytest.fixture
def web_settings(web_settings: Settings, guide_dir: Path) -> Settings:
    return replace(web_settings, guide_dir=guide_dir)


def snapshot(directory: Path) -> list[tuple[str, bytes]]:
    return sorted((p.name, p.read_bytes()) for p in directory.iterdir())


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


async def upload(client: WebClient, content: bytes, filename: str = "guide.yml"):
    token = await client.csrf("/admin/guides")
    form = aiohttp.FormData()
    form.add_field("csrf_token", token)
    form.add_field("file", content, filename=filename, content_type="application/x-yaml")
    return await client.post("/admin/guides/preview", data=form, allow_redirects=False)


async def test_the_page_lists_the_guides(admin_client: WebClient) -> None:
    page = await admin_client.get("/admin/guides")
    text = text_of(await page.text())
    assert page.status == 200 and "和平新村社区" in text and "裕园社区" in text
    assert "居住证明" in text


async def test_upload_previews_then_applies(admin_client: WebClient, guide_dir: Path) -> None:
    changed = (DEMO / "yuyuan.yml").read_text(encoding="utf-8")
    changed = changed.replace("online: 不能网上办理\n", "online: 可在“爱山东”APP预约\n")
    response = await upload(admin_client, changed.encode())
    html = await response.text()
    assert response.status == 200 and "修改" in text_of(html) and "yuyuan.yml" in html
    assert snapshot(guide_dir) == snapshot(DEMO)  # a preview changes nothing
    upload_id = UPLOAD_RE.search(html).group(1)
    applied = await admin_client.post_form("/admin/guides/apply", {"upload": upload_id})
    assert applied.status == 303 and applied.headers["Location"] == "/admin/guides?done=applied"
    guide = book.load_guides(guide_dir)["裕园社区"]
    assert guide.for_category("RELOCATION").online == "可在“爱山东”APP预约"
    again = await admin_client.post_form("/admin/guides/apply", {"upload": upload_id})
    assert again.status == 409  # used up


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"community: [", "不是有效的YAML"),
        (b"\xff\xfe\x00", "UTF-8"),
        (b"community: x\noffice: {}\nservices: [{name: y}]\n", "缺少 materials"),
        (b"a: &x 1\nb: *x\n", "锚点"),
    ],
)
async def test_a_broken_file_is_refused_with_its_problems_and_changes_nothing(
    admin_client: WebClient, guide_dir: Path, content: bytes, problem: str
) -> None:
    before = snapshot(guide_dir)
    response = await upload(admin_client, content, "broken.yml")
    assert response.status == 400
    text = text_of(await response.text())
    assert problem in text and "办事指南没有任何修改" in text
    assert snapshot(guide_dir) == before


async def test_only_admins(worker_client: WebClient, anon_client: WebClient) -> None:
    assert (await worker_client.get("/admin/guides")).status == 403
    response = await anon_client.get("/admin/guides", allow_redirects=False)
    assert response.status == 302
    assert (await upload(worker_client, b"community: x")).status == 403
