"""Photos on the worker's ticket page: residents' photos shown, a worker's uploaded."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.settings import Settings
from bot.store.db import session_scope
from bot.store.models import TicketPhoto
from bot.tickets import photos
from bot.tickets.service import get_ticket
from tests.fakes import JPEG_HEAD, PNG_1PX
from tests.web.conftest import WebClient, add_ticket

MAX_BYTES = 4000


@pytest.fixture
def web_settings(web_settings: Settings, tmp_path: Path) -> Settings:
    return replace(web_settings, photo_dir=tmp_path / "photos", photo_max_bytes=MAX_BYTES)


def resident_photo(engine, web_settings: Settings, number: str) -> int:
    stored = photos.PhotoStore(web_settings.photo_dir).save(PNG_1PX, MAX_BYTES, media_id="M1")
    with session_scope(engine) as session:
        ticket = get_ticket(session, number)
        [row] = photos.attach_stored(
            session, ticket, [stored], source="resident", actor="resident:oResident1"
        )
        return row.id


async def upload(client: WebClient, number: str, data: bytes, name: str = "a.jpg", token=None):
    form = aiohttp.FormData()
    form.add_field("csrf_token", token if token is not None else await client.csrf("/"))
    form.add_field("photo", data, filename=name, content_type="image/jpeg")
    return await client.post(f"/tickets/{number}/photos", data=form, allow_redirects=False)


async def test_the_residents_photo_is_shown_and_served_to_the_grid_worker_only(
    web_engine, web_settings, worker_client, other_worker_client, anon_client
) -> None:
    number = add_ticket(web_engine)
    photo_id = resident_photo(web_engine, web_settings, number)
    url = f"/tickets/{number}/photos/{photo_id}"

    page = await worker_client.get(f"/tickets/{number}")
    html = await page.text()
    assert "居民发来的照片（1张）" in html and f'src="{url}"' in html

    image = await worker_client.get(url)
    assert image.status == 200 and await image.read() == PNG_1PX
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"

    assert (await other_worker_client.get(url)).status == 404  # another grid's ticket
    assert (await worker_client.get(f"/tickets/{number}/photos/{photo_id + 7}")).status == 404
    anon = await anon_client.get(url, allow_redirects=False)
    assert anon.status == 302 and anon.headers["Location"].startswith("/login")


async def test_a_worker_uploads_a_resolution_photo(web_engine, worker_client) -> None:
    number = add_ticket(web_engine)
    response = await upload(worker_client, number, JPEG_HEAD)
    assert response.status == 303
    assert response.headers["Location"] == f"/tickets/{number}?done=photo"
    page = await (await worker_client.get(f"/tickets/{number}?done=photo")).text()
    assert "照片已上传" in page
    [src] = re.findall(r'alt="处理照片1"', page)
    assert src
    with session_scope(web_engine, readonly=True) as session:
        [row] = session.execute(select(TicketPhoto)).scalars().all()
        assert row.source == "worker" and row.content_type == "image/jpeg"
        assert row.actor.startswith("worker:")


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (JPEG_HEAD + b"\0" * MAX_BYTES, 413, "照片太大了（最大4KB）"),
        (b"MZ\x90\x00 an .exe renamed to .jpg", 400, "这个文件不是照片"),
        (b"", 400, "请选择一张照片"),
    ],
)
async def test_bad_uploads_are_refused_with_a_clear_message(
    web_engine, worker_client, data, status, message
) -> None:
    number = add_ticket(web_engine)
    response = await upload(worker_client, number, data)
    assert response.status == status
    assert message in await response.text()
    with session_scope(web_engine, readonly=True) as session:
        assert session.execute(select(TicketPhoto)).scalars().all() == []


async def test_uploads_need_the_csrf_token_and_a_visible_ticket(
    web_engine, worker_client, other_worker_client
) -> None:
    number = add_ticket(web_engine)
    assert (await upload(worker_client, number, JPEG_HEAD, token="forged")).status == 403
    assert (await upload(other_worker_client, number, JPEG_HEAD)).status == 404
    with session_scope(web_engine, readonly=True) as session:
        assert session.execute(select(TicketPhoto)).scalars().all() == []
