"""media_url: the ticket's first public photo (a staff member's), served by the
web app; residents' photos and internal tickets' never; a posted URL kept."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine

from bot.settings import get_settings
from bot.store.db import session_scope
from bot.tickets import photos, service
from tests.fakes import JPEG_HEAD, PNG_1PX
from tests.web.open311.conftest import BASE
from tests.web.open311.test_updates import open_ticket


@pytest.fixture(autouse=True)
def photo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "photos"
    monkeypatch.setenv("PHOTO_DIR", str(path))
    get_settings.cache_clear()
    return path


def attach(engine: Engine, photo_dir: Path, number: str, data: bytes, source: str) -> int:
    stored = photos.PhotoStore(photo_dir).save(data, 10_000)
    with session_scope(engine) as session:
        ticket = service.get_ticket(session, number)
        [row] = photos.attach_stored(session, ticket, [stored], source=source, actor=f"{source}:1")
        return row.id


async def media_of(client: TestClient, number: str, key: str | None = None) -> str | None:
    params = {"api_key": key} if key else None
    [request] = await (await client.get(f"{BASE}/requests/{number}.json", params=params)).json()
    return request["media_url"]


async def test_the_staffs_photo_is_the_public_media(
    client: TestClient, demo_engine: Engine, photo_dir: Path
) -> None:
    number = open_ticket(demo_engine, "lamp", code="FACILITY")
    resident = attach(demo_engine, photo_dir, number, PNG_1PX, "resident")
    assert await media_of(client, number) is None
    assert (await client.get(f"{BASE}/media/{resident}.png")).status == 404

    worker = attach(demo_engine, photo_dir, number, JPEG_HEAD, "worker")
    url = await media_of(client, number)
    assert url == f"{get_settings().public_web_url}{BASE}/media/{worker}.jpg"
    response = await client.get(f"{BASE}/media/{worker}.jpg")
    assert response.status == 200
    assert await response.read() == JPEG_HEAD
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["X-Content-Type-Options"] == "nosniff"

    root = ET.fromstring(await (await client.get(f"{BASE}/requests/{number}.xml")).read())
    assert root.findtext("request/media_url") == url

    # Another extension, another id, not a number: 404 in the error form.
    for path in (f"{worker}.png", f"{worker + 99}.jpg", "abc.jpg", f"{worker}.svg"):
        response = await client.get(f"{BASE}/media/{path}")
        assert response.status == 404, path
        assert (await response.json())[0]["code"] == 404


async def test_internal_tickets_photos_are_not_public(
    client: TestClient, demo_engine: Engine, photo_dir: Path
) -> None:
    number = open_ticket(demo_engine, "handoff", code="HANDOFF")
    worker = attach(demo_engine, photo_dir, number, JPEG_HEAD, "worker")
    assert (await client.get(f"{BASE}/media/{worker}.jpg")).status == 404


async def test_a_missing_file_is_404(
    client: TestClient, demo_engine: Engine, photo_dir: Path
) -> None:
    number = open_ticket(demo_engine, "gone", code="FACILITY")
    worker = attach(demo_engine, photo_dir, number, JPEG_HEAD, "worker")
    for file in photo_dir.rglob("*.jpg"):
        file.unlink()
    assert (await client.get(f"{BASE}/media/{worker}.jpg")).status == 404


async def test_a_posted_media_url_is_kept_until_a_public_photo_comes(
    client: TestClient, demo_engine: Engine, photo_dir: Path, api_key: str, read_key: str
) -> None:
    response = await client.post(
        f"{BASE}/requests.json",
        data={
            "api_key": api_key,
            "service_code": "FACILITY",
            "address_string": "和平新村3号楼",
            "description": "路灯不亮",
            "media_url": "https://city.example.com/photos/1.jpg",
        },
    )
    [created] = await response.json()
    number = created["service_request_id"]
    # the submitter's picture is in the full record only (bot.tickets.publication)
    assert await media_of(client, number, read_key) == "https://city.example.com/photos/1.jpg"
    assert await media_of(client, number) is None
    worker = attach(demo_engine, photo_dir, number, JPEG_HEAD, "worker")
    assert (await media_of(client, number) or "").endswith(f"{BASE}/media/{worker}.jpg")
