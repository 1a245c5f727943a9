"""POST requests.json: keys, validation, and routing exactly like chat tickets."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.apikeys import revoke_key
from bot.nlu.normalise import normalise
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.store.models import ApiKey, Ticket, TicketEvent
from bot.taxonomy import get_taxonomy
from tests.web.open311.conftest import BASE

URL = f"{BASE}/requests.json"
# Inside the polygon of HPXC-02 (data/grids/jinan-demo.yml).
HPXC_02_POINT = {"lat": "36.6610", "long": "117.0315"}


def ticket(engine: Engine, number: str) -> dict[str, Any]:
    with session_scope(engine, readonly=True) as session:
        t = session.execute(select(Ticket).where(Ticket.number == number)).scalar_one()
        events = session.execute(
            select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)
        ).scalars()
        return {
            "grid": t.grid.code if t.grid else None,
            "community": t.community.name if t.community else None,
            "level": t.level,
            "assignee": t.assignee.name if t.assignee else None,
            "routing_reason": t.routing_reason,
            "channel": t.channel,
            "sender_id": t.sender_id,
            "message_id": t.message_id,
            "description": t.description,
            "photos": t.photos,
            "lat": t.lat,
            "lon": t.lon,
            "building": t.building,
            "unit": t.unit,
            "room": t.room,
            "events": [(e.type, e.actor, e.note, e.data) for e in events],
        }


def count_tickets(engine: Engine) -> int:
    with session_scope(engine, readonly=True) as session:
        return len(session.execute(select(Ticket.id)).all())


async def post(client: TestClient, data: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
    response = await client.post(URL, data=data, **kwargs)
    assert response.content_type == "application/json"
    return response.status, await response.json()


async def test_address_goes_to_the_grid_of_the_building(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    status, body = await post(
        client,
        {
            "api_key": api_key,
            "service_code": "HEATING",
            "address_string": "和平新村3号楼2单元501",
            "description": "暖气不热三天了",
            "first_name": "芳",
            "last_name": "张",
            "phone": "13900000000",
            "email": "zhang@example.com",
            "device_id": "dev-1",
            "account_id": "acc-9",
            "media_url": "https://example.com/p/1.jpg",
            "attribute[X]": "ignored",
            "jurisdiction_id": "jinan.gov.cn",
        },
    )
    assert status == 200
    assert isinstance(body, list) and len(body) == 1
    receipt = body[0]
    assert list(receipt) == ["service_request_id", "service_notice", "account_id"]
    assert isinstance(receipt["service_request_id"], str)
    assert "HPXC-01" in receipt["service_notice"] and "王芳" in receipt["service_notice"]
    assert receipt["account_id"] is None

    t = ticket(demo_engine, receipt["service_request_id"])
    prefix = api_key.split(".")[0]
    assert t["grid"] == "HPXC-01"
    assert t["community"] == "和平新村社区"
    assert t["level"] == "grid"
    assert t["assignee"] == "王芳"
    assert (t["building"], t["unit"], t["room"]) == (3, "2", "501")
    assert t["channel"] == "open311"
    assert t["sender_id"] == f"open311:{prefix}"
    assert t["message_id"] is None
    assert t["description"] == "暖气不热三天了"
    assert t["photos"] == ["https://example.com/p/1.jpg"]
    types = [e[0] for e in t["events"]]
    assert types == ["created", "assigned", "note"]
    note = t["events"][2]
    assert note[1] == f"open311:{prefix}"
    for value in ("张芳", "13900000000", "zhang@example.com", "dev-1", "acc-9"):
        assert value in note[2]
    assert note[3]["open311_contact"]["phone"] == "13900000000"

    # The contact details stay with the handler: not in the public request.
    response = await client.get(f"{BASE}/requests/{receipt['service_request_id']}.json")
    text = await response.text()
    assert "13900000000" not in text and "zhang@example.com" not in text
    assert "501" not in text  # the room is not published


@pytest.mark.parametrize(
    ("code", "text"),
    [
        ("HEATING", "和平新村3号楼"),
        ("CERTIFICATE", "和平新村3号楼"),
        ("NEIGHBOUR_DISPUTE", "裕园10号楼"),
        ("PARKING", "和平新村社区"),
        ("NOISE", "和平新村99号楼"),
    ],
)
async def test_routing_is_the_chat_routing(
    client: TestClient, demo_engine: Engine, api_key: str, code: str, text: str
) -> None:
    status, body = await post(
        client, {"api_key": api_key, "service_code": code, "address_string": text}
    )
    assert status == 200
    t = ticket(demo_engine, body[0]["service_request_id"])
    with session_scope(demo_engine, readonly=True) as session:
        locator = get_locator(session)
        located = locator.locate_text(normalise(text, max_chars=None))
        route = locator.route(get_taxonomy().by_code(code), located)
    assert (t["level"], t["community"], t["grid"]) == (route.level, route.community, route.grid)
    assert t["routing_reason"] == route.reason


async def test_lat_long_inside_a_grid_polygon(
    client: TestClient, demo_engine: Engine, api_key: str, read_key: str
) -> None:
    response = await client.post(
        URL,
        json={"api_key": api_key, "service_code": "SANITATION", "lat": 36.6610, "long": 117.0315},
    )
    assert response.status == 200
    number = (await response.json())[0]["service_request_id"]
    t = ticket(demo_engine, number)
    assert (t["grid"], t["level"], t["assignee"]) == ("HPXC-02", "grid", "李强")
    assert (t["lat"], t["lon"]) == (36.6610, 117.0315)
    full = {"api_key": read_key}  # the point is a full record's
    request = (await (await client.get(f"{BASE}/requests/{number}.json", params=full)).json())[0]
    assert request["lat"] == 36.6610 and request["long"] == 117.0315
    assert request["grid_code"] == "HPXC-02"


async def test_building_in_the_address_wins_over_the_point(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    status, body = await post(
        client,
        {"api_key": api_key, "service_code": "HEATING", "address_string": "和平新村3号楼"}
        | HPXC_02_POINT,
    )
    assert status == 200
    assert ticket(demo_engine, body[0]["service_request_id"])["grid"] == "HPXC-01"


async def test_address_id_may_be_a_grid_code(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    status, body = await post(
        client, {"api_key": api_key, "service_code": "FACILITY", "address_id": "YY-02"}
    )
    assert status == 200
    t = ticket(demo_engine, body[0]["service_request_id"])
    assert (t["grid"], t["community"], t["assignee"]) == ("YY-02", "裕园社区", "赵磊")


async def test_an_address_nobody_can_place_still_opens_a_ticket(
    client: TestClient, demo_engine: Engine, api_key: str, read_key: str
) -> None:
    status, body = await post(
        client, {"api_key": api_key, "service_code": "NOISE", "address_string": "火星基地1号"}
    )
    assert status == 200
    assert "核实地址" in body[0]["service_notice"]
    t = ticket(demo_engine, body[0]["service_request_id"])
    assert (t["community"], t["grid"]) == (None, None)
    request = (
        await (
            await client.get(
                f"{BASE}/requests/{body[0]['service_request_id']}.json",
                params={"api_key": read_key},  # the words given are a full record's
            )
        ).json()
    )[0]
    assert request["address"] == "火星基地1号"
    assert request["agency_responsible"] == "社区居委会"


async def test_point_outside_every_grid(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    status, body = await post(
        client, {"api_key": api_key, "service_code": "NOISE", "lat": "39.9", "long": "116.4"}
    )
    assert status == 200
    t = ticket(demo_engine, body[0]["service_request_id"])
    assert (t["grid"], t["lat"], t["lon"]) == (None, 39.9, 116.4)


# -- errors -------------------------------------------------------------------


def assert_errors(body: Any, code: int, *fragments: str) -> None:
    assert isinstance(body, list) and body
    for entry in body:
        assert set(entry) == {"code", "description"}
        assert isinstance(entry["code"], int) and isinstance(entry["description"], str)
    text = " | ".join(e["description"] for e in body)
    assert any(e["code"] == code for e in body), body
    for fragment in fragments:
        assert fragment in text, (fragment, text)


async def test_unknown_service_code_is_404(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    for code in ("NOPE", "HANDOFF"):
        status, body = await post(
            client, {"api_key": api_key, "service_code": code, "address_string": "和平新村3号楼"}
        )
        assert status == 404
        assert_errors(body, 404, f"service_code {code} was not found")
    assert count_tickets(demo_engine) == 0


async def test_missing_service_code_is_400(client: TestClient, api_key: str) -> None:
    status, body = await post(client, {"api_key": api_key, "address_string": "和平新村3号楼"})
    assert status == 400
    assert_errors(body, 400, "service_code was not provided")


async def test_no_location_is_400(client: TestClient, demo_engine: Engine, api_key: str) -> None:
    status, body = await post(client, {"api_key": api_key, "service_code": "HEATING"})
    assert status == 400
    assert_errors(body, 400, "location required")
    assert count_tickets(demo_engine) == 0


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ({"lat": "abc", "long": "117.03"}, "lat must be a number"),
        ({"lat": "91", "long": "117.03"}, "lat must be between -90 and 90"),
        ({"lat": "36.66", "long": "181"}, "long must be between -180 and 180"),
        ({"lat": "nan", "long": "117.03"}, "lat must be between"),
        ({"lat": "36.66"}, "lat and long must be sent together"),
        ({"long": "117.03"}, "lat and long must be sent together"),
    ],
)
async def test_bad_lat_long_is_400(
    client: TestClient, api_key: str, location: dict[str, str], fragment: str
) -> None:
    status, body = await post(client, {"api_key": api_key, "service_code": "HEATING"} | location)
    assert status == 400
    assert_errors(body, 400, fragment)


async def test_every_problem_is_listed_at_once(client: TestClient, api_key: str) -> None:
    status, body = await post(
        client,
        {
            "api_key": api_key,
            "service_code": "NOPE",
            "description": "x" * 4001,
            "media_url": "javascript:alert(1)",
        },
    )
    assert status == 400
    assert_errors(
        body,
        400,
        "location required",
        "description longer than 4,000 characters",
        "media_url must be an http:// or https:// URL",
        "service_code NOPE was not found",
    )
    assert {e["code"] for e in body} == {400, 404}


async def test_description_of_4000_characters_is_accepted(client: TestClient, api_key: str) -> None:
    status, _ = await post(
        client,
        {
            "api_key": api_key,
            "service_code": "HEATING",
            "address_string": "和平新村3号楼",
            "description": "暖" * 4000,
        },
    )
    assert status == 200


async def test_missing_unknown_and_revoked_keys_are_403(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    fields = {"service_code": "HEATING", "address_string": "和平新村3号楼"}
    status, body = await post(client, fields)
    assert status == 403
    assert_errors(body, 403, "api_key was not provided")

    for wrong in ("nonsense", api_key + "x", api_key.split(".")[0] + ".wrong", "." * 300):
        status, body = await post(client, fields | {"api_key": wrong})
        assert status == 403
        assert_errors(body, 403, "Invalid api_key")

    with session_scope(demo_engine) as session:
        revoke_key(session, api_key.split(".")[0])
    status, body = await post(client, fields | {"api_key": api_key})
    assert status == 403
    assert count_tickets(demo_engine) == 0


async def test_key_comes_before_the_fields(client: TestClient) -> None:
    status, body = await post(client, {"api_key": "nonsense", "service_code": "NOPE"})
    assert status == 403


async def test_key_in_the_query_string_and_last_use(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    response = await client.post(
        URL,
        params={"api_key": api_key},
        data={"service_code": "HEATING", "address_string": "和平新村3号楼"},
    )
    assert response.status == 200
    with session_scope(demo_engine, readonly=True) as session:
        key = session.execute(select(ApiKey)).scalar_one()
        assert key.last_used_at is not None


async def test_last_use_is_recorded_even_when_the_fields_are_wrong(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    status, _ = await post(client, {"api_key": api_key, "service_code": "HEATING"})
    assert status == 400
    with session_scope(demo_engine, readonly=True) as session:
        assert session.execute(select(ApiKey.last_used_at)).scalar_one() is not None


async def test_idempotency_key_returns_the_same_ticket(
    client: TestClient, demo_engine: Engine, api_key: str
) -> None:
    fields = {
        "api_key": api_key,
        "service_code": "HEATING",
        "address_string": "和平新村3号楼",
        "phone": "13900000000",
    }
    headers = {"Idempotency-Key": "hotline-20261127-42"}
    first = await post(client, fields, headers=headers)
    second = await post(client, fields, headers=headers)
    assert first == second and first[0] == 200
    assert count_tickets(demo_engine) == 1
    t = ticket(demo_engine, first[1][0]["service_request_id"])
    assert t["message_id"] == "hotline-20261127-42"
    assert [e[0] for e in t["events"]].count("note") == 1
    # Without the header, the same fields open another ticket.
    await post(client, fields)
    assert count_tickets(demo_engine) == 2


async def test_bad_bodies_are_error_lists(client: TestClient, api_key: str) -> None:
    response = await client.post(
        URL, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert_errors(await response.json(), 400, "not valid JSON")

    response = await client.post(URL, json=["a"])
    assert response.status == 400
    assert_errors(await response.json(), 400, "must be an object")

    response = await client.post(
        URL, json={"api_key": api_key, "service_code": ["HEATING"], "address_string": "x"}
    )
    assert response.status == 400
    assert_errors(await response.json(), 400, "service_code must be a string")

    response = await client.post(
        URL, data=b"api_key=%FF%FE", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status in (400, 403)
    assert isinstance(await response.json(), list)

    response = await client.post(
        URL,
        data={"api_key": api_key, "service_code": "HEATING", "address_string": "和平\x00新村"},
    )
    assert response.status == 400
    assert_errors(await response.json(), 400, "NUL")

    response = await client.post(
        URL,
        data=b"a=" + b"x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert_errors(await response.json(), 400, "too large")


async def test_markup_in_the_description_comes_back_as_data(
    client: TestClient, api_key: str, read_key: str
) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)> & 暖气'
    status, body = await post(
        client,
        {
            "api_key": api_key,
            "service_code": "HEATING",
            "address_string": "和平新村3号楼",
            "description": evil,
        },
    )
    assert status == 200
    response = await client.get(
        f"{BASE}/requests/{body[0]['service_request_id']}.json", params={"api_key": read_key}
    )
    assert response.content_type == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    raw = await response.text()
    assert "<script>" not in raw and "<img" not in raw
    assert "\\u003cscript\\u003e" in raw
    assert (await response.json())[0]["description"] == evil
