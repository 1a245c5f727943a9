"""Request updates (mySociety's extension): GET servicerequestupdates, and POST
an update from another city system through the ticket state machine."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.apikeys import create_key
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.store.models import Notification, Open311Update, Ticket, TicketEvent
from bot.tickets import service
from tests.web.open311.conftest import BASE

URL = f"{BASE}/servicerequestupdates"
UPDATE_FIELDS = [
    "update_id",
    "service_request_id",
    "status",
    "updated_datetime",
    "description",
    "media_url",
]


def open_ticket(engine: Engine, name: str, code: str = "HEATING", **kw: Any) -> str:
    with session_scope(engine) as session:
        located = get_locator(session).locate_text("和平新村3号楼2单元501")
        ticket = service.open_ticket(
            session,
            sender_id=f"wx-{name}",
            channel="wechat",
            message_id=f"m-{name}",
            category_code=code,
            description=f"{name}的描述",
            location=located,
            **kw,
        )
        return ticket.number


def state(engine: Engine, number: str) -> dict[str, Any]:
    with session_scope(engine, readonly=True) as session:
        ticket = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        events = session.execute(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        ).scalars()
        notices = session.execute(
            select(Notification.kind, Notification.target).where(
                Notification.ticket_id == ticket.id, Notification.channel == "wechat"
            )
        ).all()
        return {
            "status": ticket.status,
            "events": [(e.id, e.type, e.actor, e.note, e.data) for e in events],
            "resident_notices": [tuple(n) for n in notices],
        }


async def post(
    client: TestClient, fields: dict[str, Any], fmt: str = "json", **kw: Any
) -> tuple[int, Any]:
    response = await client.post(f"{URL}.{fmt}", data=fields, **kw)
    if fmt == "xml":
        assert response.content_type == "text/xml"
        return response.status, ET.fromstring(await response.read())
    assert response.content_type == "application/json"
    return response.status, await response.json()


def update(api_key: str, number: str, update_id: str, status: str, **kw: str) -> dict[str, str]:
    return {
        "api_key": api_key,
        "service_request_id": number,
        "update_id": update_id,
        "status": status,
        "description": kw.pop("description", f"{status} 说明"),
        **kw,
    }


async def test_an_update_is_a_worker_action_that_reaches_the_resident(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    number = open_ticket(demo_engine, "heating")
    status, body = await post(
        client,
        update(
            api_key,
            number,
            "crm-1",
            "IN_PROGRESS",
            description="已派维修工，明早上门",
            updated_datetime="2026-12-06T09:00:00+08:00",
            email="clerk@example.com",
            first_name="小",
            last_name="李",
        ),
    )
    assert status == 200, body
    after = state(demo_engine, number)
    assert after["status"] == "accepted"
    event_id, kind, actor, note, data = after["events"][-1]
    assert body == [{"update_id": str(event_id)}]
    assert kind == "accepted"
    assert actor.startswith("open311:")
    assert note == "已派维修工，明早上门"
    assert data["open311_update_id"] == "crm-1"
    assert data["updated_datetime"] == "2026-12-06T09:00:00+08:00"
    assert data["open311_author"] == {
        "email": "clerk@example.com",
        "first_name": "小",
        "last_name": "李",
    }
    # The resident hears of it like any acceptance.
    assert after["resident_notices"] == [("accepted", "wx-heating")]

    # FIXED resolves (the resident hears again), CLOSED then closes.
    status, _ = await post(client, update(api_key, number, "crm-2", "fixed"))
    assert status == 200
    after = state(demo_engine, number)
    assert after["status"] == "resolved"
    assert after["resident_notices"] == [("accepted", "wx-heating"), ("resolved", "wx-heating")]
    status, _ = await post(client, update(api_key, number, "crm-3", "CLOSED"))
    assert status == 200
    assert state(demo_engine, number)["status"] == "closed"


async def test_open_reopens_a_resolved_ticket(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    number = open_ticket(demo_engine, "reopen")
    with session_scope(demo_engine) as session:
        service.resolve(session, number, actor="worker:1", note="修好了")
    status, _ = await post(client, update(api_key, number, "crm-9", "OPEN", description="仍不热"))
    assert status == 200
    after = state(demo_engine, number)
    assert after["status"] == "open"
    _, kind, actor, note, _ = after["events"][-1]
    assert (kind, note) == ("reopened", "仍不热") and actor.startswith("open311:")


async def test_an_update_in_the_same_status_is_a_note(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    number = open_ticket(demo_engine, "note")
    await post(client, update(api_key, number, "a", "in_progress"))
    status, body = await post(client, update(api_key, number, "b", "investigating"))
    assert status == 200
    after = state(demo_engine, number)
    assert after["status"] == "accepted"
    event_id, kind, _, note, data = after["events"][-1]
    assert (kind, note, data["open311_update_id"]) == ("note", "investigating 说明", "b")
    assert body == [{"update_id": str(event_id)}]


async def test_a_replayed_update_changes_nothing(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    number = open_ticket(demo_engine, "replay")
    fields = update(api_key, number, "crm-7", "in_progress")
    first = await post(client, fields)
    before = state(demo_engine, number)
    # The same update again, even with other fields: the stored answer, no change.
    again = await post(client, {**fields, "status": "FIXED", "description": "别的"})
    assert again == first
    assert state(demo_engine, number) == before
    xml_status, root = await post(client, fields, fmt="xml")
    assert xml_status == 200
    assert root.tag == "service_request_updates"
    assert root.findtext("request_update/update_id") == first[1][0]["update_id"]
    assert state(demo_engine, number) == before
    with session_scope(demo_engine, readonly=True) as session:
        assert session.execute(select(func.count(Open311Update.id))).scalar_one() == 1

    # Another system's update with the same id is its own update.
    with session_scope(demo_engine) as session:
        other_key = create_key(session, "另一系统", created_by="tests").token
    status, body = await post(client, update(other_key, number, "crm-7", "in_progress"))
    assert status == 200 and body != first[1]


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_an_update_for_an_unknown_request_is_404(
    client: TestClient, demo_engine: Engine, api_key: str, fmt: str
) -> None:
    handoff = open_ticket(demo_engine, "handoff", code="HANDOFF")
    for number in ("20990101-0001", handoff):
        status, body = await post(client, update(api_key, number, f"x-{number}", "fixed"), fmt)
        assert status == 404
        if fmt == "xml":
            assert body.tag == "errors" and body.findtext("error/code") == "404"
        else:
            assert body[0]["code"] == 404
    assert state(demo_engine, handoff)["status"] == "open"


async def test_an_illegal_transition_is_400_and_changes_nothing(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    number = open_ticket(demo_engine, "closed")
    with session_scope(demo_engine) as session:
        service.cancel_ticket(session, number, "wx-closed", reason="不用了")
    before = state(demo_engine, number)
    status, body = await post(client, update(api_key, number, "late", "in_progress"))
    assert status == 400
    assert "cancelled" in body[0]["description"]
    assert state(demo_engine, number) == before
    with session_scope(demo_engine, readonly=True) as session:
        assert session.execute(select(func.count(Open311Update.id))).scalar_one() == 0


async def test_bad_updates_are_listed_at_once(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    status, body = await post(client, {"api_key": api_key, "status": "mended"})
    assert status == 400
    text = " ".join(e["description"] for e in body)
    assert "service_request_id" in text and "update_id" in text and "mended" in text

    number = open_ticket(demo_engine, "bad")
    bad = update(
        api_key,
        number,
        "u" * 129,
        "fixed",
        updated_datetime="yesterday",
        media_url="javascript:alert(1)",
        description="长" * 4001,
    )
    status, body = await post(client, bad)
    assert status == 400
    assert len(body) == 4
    status, body = await post(client, update(api_key, number, "nul", "fixed", description="a\x00b"))
    assert status == 400
    assert state(demo_engine, number)["status"] == "open"


async def test_keys_are_checked_first(client: TestClient, demo_engine: Engine) -> None:
    number = open_ticket(demo_engine, "keys")
    status, body = await post(client, update("", number, "k", "fixed"))
    assert status == 403
    status, body = await post(client, update("nope.nope", number, "k", "fixed"), fmt="xml")
    assert status == 403 and body.findtext("error/code") == "403"
    assert state(demo_engine, number)["status"] == "open"


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_malformed_bodies_are_400(client: TestClient, api_key: str, fmt: str) -> None:
    for content_type, raw in (("application/json", b"{"), ("text/xml", b"<a><b></a>")):
        response = await client.post(
            f"{URL}.{fmt}?api_key={api_key}", data=raw, headers={"Content-Type": content_type}
        )
        assert response.status == 400


# -- GET --------------------------------------------------------------------------------


async def test_get_lists_the_updates_oldest_first_in_both_formats(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    hour = timedelta(hours=1)
    number = open_ticket(demo_engine, "get", now=now - 5 * hour)
    handoff = open_ticket(demo_engine, "get-handoff", code="HANDOFF", now=now - 5 * hour)
    with session_scope(demo_engine) as session:
        service.add_note(
            session,
            number,
            actor="open311:abc",
            note="Open311提交人 邮箱：a@example.com",
            data={"open311_contact": {"email": "a@example.com"}},
            now=now - 4 * hour,
        )
        service.accept(session, number, actor="worker:1", note="收到", now=now - 3 * hour)
        service.add_note(session, number, actor="worker:1", note="备件已订", now=now - 2 * hour)
        service.resolve(session, number, actor="worker:1", note="修好了", now=now - hour)
        service.accept(session, handoff, actor="worker:1", note="内部", now=now - hour)

    response = await client.get(f"{URL}.json")
    assert response.status == 200
    updates = await response.json()
    assert [u["service_request_id"] for u in updates] == [number] * 3
    assert [list(u) for u in updates] == [UPDATE_FIELDS] * 3
    assert [(u["status"], u["description"]) for u in updates] == [
        ("in_progress", "收到"),
        ("in_progress", "备件已订"),
        ("fixed", "修好了"),
    ]
    assert "a@example.com" not in str(updates)

    response = await client.get(f"{URL}.xml")
    root = ET.fromstring(await response.read())
    assert root.tag == "service_request_updates"
    assert [u.tag for u in root] == ["request_update"] * 3
    for element, entry in zip(root, updates, strict=True):
        assert [c.tag for c in element] == UPDATE_FIELDS
        assert element.findtext("update_id") == entry["update_id"]
        assert element.findtext("status") == entry["status"]

    # start_date: only the resolution (an unencoded + reads as a space).
    since = (now - 90 * timedelta(minutes=1)).isoformat()
    response = await client.get(f"{URL}.json", params={"start_date": since})
    assert [u["description"] for u in await response.json()] == ["修好了"]

    # A posted update is listed under the id its POST answered.
    status, body = await post(client, update(api_key, number, "crm-x", "closed"))
    assert status == 200
    updates = await (await client.get(f"{URL}.json")).json()
    assert updates[-1]["update_id"] == body[0]["update_id"]
    assert updates[-1]["status"] == "closed"


async def test_get_bad_dates_are_400(client: TestClient) -> None:
    response = await client.get(f"{URL}.xml?start_date=yesterday")
    assert response.status == 400
    root = ET.fromstring(await response.read())
    assert root.tag == "errors" and root.findtext("error/code") == "400"
    response = await client.get(f"{URL}.json?start_date=2026-01-01&end_date=2026-12-01")
    assert response.status == 400
    assert (await client.get(f"{URL}.yaml")).status == 404


def test_two_posts_of_one_update_at_once_apply_it_once(
    demo_engine: Engine, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second post misses the first's row when it looks (both in flight);
    the unique constraint stops it, and it answers what the first stored."""
    from bot.open311 import updates

    number = open_ticket(demo_engine, "race")
    fields = update(api_key, number, "crm-race", "in_progress")
    with session_scope(demo_engine) as session:
        first = updates.post_update(session, fields)
    before = state(demo_engine, number)

    looked: list[str] = []

    def missed(session: Any, source: str, update_id: str) -> Any:
        looked.append(update_id)
        if len(looked) == 1:
            return None  # the first transaction had not committed when we looked
        return real_stored(session, source, update_id)

    real_stored = updates._stored
    monkeypatch.setattr(updates, "_stored", missed)
    with session_scope(demo_engine) as session:
        second = updates.post_update(session, fields)
    assert looked == ["crm-race", "crm-race"]
    assert second == first
    assert state(demo_engine, number) == before


async def test_fixmystreets_extended_update_id_is_read(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    number = open_ticket(demo_engine, "ext")
    fields = update(api_key, number, "", "FIXED")
    del fields["update_id"]
    fields.update(
        update_id_ext="123", service_request_id_ext="77", public_anonymity_required="FALSE"
    )
    status, body = await post(client, fields)
    assert status == 200, body
    again = await post(client, fields)
    assert again == (status, body)
    _, _, _, _, data = state(demo_engine, number)["events"][-1]
    assert data["open311_update_id"] == "123"
