"""Photos of tickets: checks by magic bytes and size, the store, attaching, access."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.store.db import session_scope
from bot.store.models import TicketPhoto
from bot.tickets import photos
from bot.tickets.service import get_ticket
from tests.fakes import JPEG_HEAD, PNG_1PX
from tests.helpers import located, new_ticket


class Viewer:
    def __init__(self, id: int, role: str, community_id: int | None = None) -> None:
        self.id, self.role, self.community_id = id, role, community_id


ADMIN = Viewer(1, "admin")
STRANGER = Viewer(999, "grid_worker")


@pytest.fixture
def make_ticket(demo_engine):
    def make() -> str:
        with session_scope(demo_engine) as session:
            where = located(session, "和平新村3号楼2单元501")
            return new_ticket(session, location=where).number

    return make


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG_1PX, "image/png"),
        (JPEG_HEAD, "image/jpeg"),
        (b"GIF89a" + b"\0" * 20, "image/gif"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7 not a picture", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"MZ\x90\x00", None),  # a Windows program named photo.jpg
        (b"", None),
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, expected: str | None) -> None:
    assert photos.image_type(data) == expected


def test_oversize_empty_and_non_images_are_refused(tmp_path: Path) -> None:
    store = photos.PhotoStore(tmp_path)
    with pytest.raises(photos.PhotoRejected) as too_large:
        store.save(JPEG_HEAD + b"\0" * 1000, max_bytes=100)
    assert too_large.value.reason == "too_large"
    with pytest.raises(photos.PhotoRejected) as not_image:
        store.save(b"#!/bin/sh\nrm -rf /\n", max_bytes=100)
    assert not_image.value.reason == "not_image"
    with pytest.raises(photos.PhotoRejected) as empty:
        store.save(b"", max_bytes=100)
    assert empty.value.reason == "empty"
    assert list(tmp_path.rglob("*")) == []  # nothing kept


def test_the_store_names_files_by_content(tmp_path: Path) -> None:
    store = photos.PhotoStore(tmp_path)
    first = store.save(PNG_1PX, max_bytes=10_000)
    again = store.save(PNG_1PX, max_bytes=10_000)
    assert first == again and first.key.endswith(".png") and store.exists(first.key)
    assert store.path(first.key).read_bytes() == PNG_1PX
    assert photos.StoredPhoto.from_slot(first.to_slot()) == first
    for bad in ("../../etc/passwd", "x.png", first.key.replace(".png", ".svg")):
        assert not store.exists(bad)
        with pytest.raises(ValueError):
            store.path(bad)
    # slot values of another shape (an old PicUrl, junk) are not photos
    assert photos.StoredPhoto.from_slot("http://pic/1") is None
    assert photos.StoredPhoto.from_slot({"key": "../x.png"}) is None


def test_attached_once_listed_and_served_to_those_who_may_see_the_ticket(
    tmp_path: Path, demo_engine, make_ticket
) -> None:
    engine = demo_engine
    store = photos.PhotoStore(tmp_path)
    stored = store.save(PNG_1PX, max_bytes=10_000)
    number = make_ticket()
    with session_scope(engine) as session:
        ticket = get_ticket(session, number)
        added = photos.attach_stored(
            session, ticket, [stored, stored], source="resident", actor="resident:o1"
        )
        assert len(added) == 1
        assert photos.attach_stored(session, ticket, [stored], source="resident", actor="x") == []
        photo_id = added[0].id
    with session_scope(engine, readonly=True) as session:
        ticket = get_ticket(session, number)
        [view] = photos.photos_of(session, ticket)
        assert view.url == f"/tickets/{number}/photos/{photo_id}" and view.source == "resident"
        found = photos.photo_file(session, ADMIN, number, photo_id, store)
        assert found is not None and found.content_type == "image/png"
        assert found.path.read_bytes() == PNG_1PX
        assert photos.photo_file(session, STRANGER, number, photo_id, store) is None
        assert photos.photo_file(session, ADMIN, "20000101-0001", photo_id, store) is None
        assert photos.photo_file(session, ADMIN, number, photo_id + 1, store) is None


def test_a_worker_photo_needs_a_picture_and_a_visible_ticket(
    tmp_path: Path, demo_engine, make_ticket
) -> None:
    engine = demo_engine
    store = photos.PhotoStore(tmp_path)
    number = make_ticket()
    with session_scope(engine) as session:
        assert photos.add_worker_photo(session, STRANGER, "w", number, PNG_1PX, store) is None
        with pytest.raises(photos.PhotoRejected):
            photos.add_worker_photo(session, ADMIN, "worker:1", number, b"text", store)
        row = photos.add_worker_photo(session, ADMIN, "worker:1", number, JPEG_HEAD, store)
        assert row is not None and row.source == "worker" and row.content_type == "image/jpeg"
    with session_scope(engine, readonly=True) as session:
        rows = session.execute(select(TicketPhoto)).scalars().all()
        assert [(r.source, r.actor) for r in rows] == [("worker", "worker:1")]
