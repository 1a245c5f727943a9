"""GET requests.json (filters, fields) and requests/{id}.json."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine

from bot.open311 import requests as open311_requests
from bot.open311.mapping import local_zone, w3c
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.taxonomy import get_taxonomy
from bot.tickets import service
from tests.web.open311.conftest import BASE

URL = f"{BASE}/requests.json"
STANDARD = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]
EXTENSIONS = ["grid_code", "community", "level", "channel"]
W3C_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")


@dataclass
class Seeded:
    now: datetime
    numbers: dict[str, str]  # name -> ticket number


def _open(session, name: str, code: str, text: str | None, at: datetime, **kw: Any):
    located = get_locator(session).locate_text(text) if text else None
    return service.open_ticket(
        session,
        sender_id=f"wx-{name}",
        channel=kw.pop("channel", "wechat"),
        message_id=f"m-{name}",
        category_code=code,
        description=kw.pop("description", f"{name}的描述"),
        location=located,
        now=at,
        **kw,
    )


@pytest.fixture
def seeded(demo_engine: Engine) -> Seeded:
    """Tickets of every status over 120 days (times relative to now: the default
    window is "the last 90 days")."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    day = timedelta(days=1)
    numbers = {}
    with session_scope(demo_engine) as session:
        t = _open(session, "heating", "HEATING", "和平新村3号楼2单元501", now - 1 * day)
        t.photos = ["wx-media-id-1", "https://example.com/heating.jpg"]
        numbers["heating"] = t.number

        t = _open(session, "noise", "NOISE", "裕园10号楼", now - 10 * day)
        service.accept(session, t, actor="worker:6", note="已上门查看", now=now - 9 * day)
        service.resolve(
            session, t, actor="worker:6", note="已协调邻居，夜间不再施工", now=now - 8 * day
        )
        numbers["noise"] = t.number

        t = _open(session, "parking", "PARKING", "和平新村3号楼", now - 20 * day)
        service.resolve(session, t, actor="worker:1", note="车已挪走", now=now - 19 * day)
        service.close(session, t, actor="system", now=now - 18 * day)
        numbers["parking"] = t.number

        t = _open(session, "pets", "PETS", "和平新村15号楼", now - 30 * day)
        service.cancel_ticket(session, t.number, "wx-pets", reason="不用了", now=now - 29 * day)
        numbers["pets"] = t.number

        t = _open(session, "certificate", "CERTIFICATE", "裕园社区", now - 40 * day)
        service.escalate(session, t, actor="system:escalation", now=now - 35 * day)
        numbers["certificate"] = t.number

        t = _open(session, "old", "FACILITY", "和平新村3号楼", now - 100 * day)
        numbers["old"] = t.number

        t = _open(session, "handoff", "HANDOFF", "和平新村3号楼", now - 2 * day)
        numbers["handoff"] = t.number
    return Seeded(now=now, numbers=numbers)


async def get(client: TestClient, query: str = "", key: str | None = None) -> tuple[int, Any]:
    if key is not None:
        query = f"{query}&api_key={quote(key)}" if query else f"api_key={quote(key)}"
    response = await client.get(URL + (f"?{query}" if query else ""))
    assert response.content_type == "application/json"
    return response.status, await response.json()


def ids(body: list[dict[str, Any]]) -> list[str]:
    return [r["service_request_id"] for r in body]


async def test_default_window_newest_first_without_internal_tickets(
    client: TestClient, seeded: Seeded, read_key: str
) -> None:
    status, body = await get(client)
    assert status == 200
    n = seeded.numbers
    # a certificate is a household's own affair: not public
    assert ids(body) == [n["heating"], n["noise"], n["parking"], n["pets"]]
    status, body = await get(client, key=read_key)
    assert ids(body) == [n["heating"], n["noise"], n["parking"], n["pets"], n["certificate"]]


async def test_one_request_field_by_field(
    client: TestClient, seeded: Seeded, read_key: str
) -> None:
    query = f"service_request_id={seeded.numbers['heating']}"
    status, body = await get(client, query, key=read_key)
    assert status == 200 and len(body) == 1
    request = body[0]
    # lat/long are left out when unknown (this ticket has an address only)
    assert list(request) == [f for f in STANDARD if f not in ("lat", "long")] + EXTENSIONS
    assert request["service_request_id"] == seeded.numbers["heating"]
    assert request["status"] == "open"
    assert request["status_notes"] is None
    assert request["service_name"] == "供暖供气"
    assert request["service_code"] == "HEATING"
    assert request["description"] == "heating的描述"
    assert request["agency_responsible"] == "网格员王芳"
    assert "HPXC-01" in request["service_notice"] and "办理时限" in request["service_notice"]
    for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert W3C_LOCAL.match(request[name]), (name, request[name])
    requested = datetime.fromisoformat(request["requested_datetime"])
    assert requested == seeded.now - timedelta(days=1)
    expected = datetime.fromisoformat(request["expected_datetime"])
    assert expected - requested == timedelta(hours=get_taxonomy().by_code("HEATING").sla_hours)
    assert request["address"] == "和平新村社区3号楼2单元501室"  # a full record
    assert request["address_id"] is None and request["zipcode"] is None
    assert request["media_url"] == "https://example.com/heating.jpg"
    assert request["grid_code"] == "HPXC-01"
    assert request["community"] == "和平新村社区"
    assert request["level"] == "grid"
    assert request["channel"] == "wechat"
    for name, value in request.items():
        assert value is None or isinstance(value, str), (name, value)
    # The public record of the same ticket: coarse place, no words, no photo.
    _, body = await get(client, query)
    public = body[0]
    assert public["description"] is None and public["media_url"] is None
    assert public["address"] == "和平新村社区3号楼"
    assert {
        k: v for k, v in public.items() if k not in ("description", "media_url", "address")
    } == {k: v for k, v in request.items() if k not in ("description", "media_url", "address")}


async def test_lat_long_are_absent_or_floats(
    client: TestClient, demo_engine: Engine, read_key: str
) -> None:
    now = datetime.now(timezone.utc)
    with session_scope(demo_engine) as session:
        located = get_locator(session).locate_point(36.6610, 117.0315)
        t = service.open_ticket(
            session,
            sender_id="wx-point",
            channel="wechat",
            message_id="m-point",
            category_code="SANITATION",
            description="垃圾没人收",
            location=located,
            now=now,
        )
        number = t.number
    response = await client.get(f"{BASE}/requests/{number}.json", params={"api_key": read_key})
    request = (await response.json())[0]
    assert list(request) == STANDARD + EXTENSIONS
    assert request["lat"] == 36.6610 and isinstance(request["lat"], float)
    assert request["long"] == 117.0315 and isinstance(request["long"], float)
    assert request["address"] == "和平新村社区"  # the grid is grid_code
    # The public never gets a point: it would pin down a household.
    public = (await (await client.get(f"{BASE}/requests/{number}.json")).json())[0]
    assert "lat" not in public and "long" not in public


async def test_status_mapping_notes_and_agencies(
    client: TestClient, seeded: Seeded, read_key: str
) -> None:
    _, body = await get(client, key=read_key)
    by_id = {r["service_request_id"]: r for r in body}
    n = seeded.numbers
    noise, parking, pets, cert = (by_id[n[k]] for k in ("noise", "parking", "pets", "certificate"))
    assert noise["status"] == "closed"  # resolved
    assert noise["status_notes"] == "已协调邻居，夜间不再施工"
    assert parking["status"] == "closed"  # closed (no note on close: the latest one)
    assert parking["status_notes"] == "车已挪走"
    assert pets["status"] == "closed"  # cancelled
    assert pets["status_notes"] is None  # the resident's own reason is not a staff note
    assert cert["status"] == "open"  # escalated
    assert cert["level"] == "street"
    assert cert["agency_responsible"] == "营市街街道办事处"
    assert "超过办理时限" in cert["status_notes"]
    assert noise["agency_responsible"] == "网格员赵磊"
    assert noise["grid_code"] == "YY-02" and noise["level"] == "grid"
    # updated_datetime moves with the history
    assert noise["updated_datetime"] > noise["requested_datetime"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=open", ["heating"]),
        ("status=closed", ["noise", "parking", "pets"]),
        ("status=open,closed", ["heating", "noise", "parking", "pets"]),
        ("status=open&status=closed", ["heating", "noise", "parking", "pets"]),
        ("service_code=NOISE", ["noise"]),
        ("service_code=NOISE,PETS", ["noise", "pets"]),
        ("service_code=NOISE&service_code=HEATING", ["heating", "noise"]),
        ("service_code=HANDOFF", []),
        ("service_code=CERTIFICATE", []),
        ("service_code=NOPE", []),
        ("service_code=PARKING&status=open", []),
        ("status=&service_code=", ["heating", "noise", "parking", "pets"]),
        ("page_size=2", ["heating", "noise"]),
        ("page_size=2&page=2", ["parking", "pets"]),
        ("page_size=2&page=9", []),
        ("jurisdiction_id=jinan.gov.cn", ["heating", "noise", "parking", "pets"]),
    ],
)
async def test_filters(client: TestClient, seeded: Seeded, query: str, expected: list[str]) -> None:
    status, body = await get(client, query)
    assert status == 200, body
    assert ids(body) == [seeded.numbers[name] for name in expected]


def _w3c(value: datetime, zone: str = "+08:00") -> str:
    if zone == "Z":
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return quote(w3c(value, local_zone("Asia/Shanghai")))


async def test_date_filters(client: TestClient, seeded: Seeded) -> None:
    now, day, n = seeded.now, timedelta(days=1), seeded.numbers
    start, end = now - 25 * day, now - 5 * day
    status, body = await get(client, f"start_date={_w3c(start)}&end_date={_w3c(end)}")
    assert status == 200
    assert ids(body) == [n["noise"], n["parking"]]
    status, body = await get(client, f"start_date={_w3c(start, 'Z')}&end_date={_w3c(end, 'Z')}")
    assert ids(body) == [n["noise"], n["parking"]]
    # Only a start: the 90 days after it (reaches the old ticket's time).
    status, body = await get(client, f"start_date={_w3c(now - 111 * day)}")
    assert ids(body) == [n["pets"], n["old"]]
    # Only an end: the 90 days before it.
    status, body = await get(client, f"end_date={_w3c(now - 15 * day)}")
    assert ids(body) == [n["parking"], n["pets"], n["old"]]
    # An unencoded "+" arrives as a space; it is still the offset.
    plain = w3c(start, local_zone("Asia/Shanghai"))
    status, body = await get(client, f"start_date={plain}&end_date={_w3c(end)}")
    assert status == 200 and ids(body) == [n["noise"], n["parking"]]
    # Dates alone: local days, the end day included.
    local = local_zone("Asia/Shanghai")
    first = (now - 20 * day).astimezone(local).date().isoformat()
    last = (now - 10 * day).astimezone(local).date().isoformat()
    status, body = await get(client, f"start_date={first}&end_date={last}")
    assert ids(body) == [n["noise"], n["parking"]]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("status=pending", "status must be open or closed"),
        ("status=OPEN", "status must be open or closed"),
        ("start_date=yesterday", "start_date"),
        ("start_date=2026-13-01", "start_date"),
        ("end_date=2026-11-27T10:00:00", "no time zone"),
        ("start_date=2026-11-27T10:00:00Z&end_date=2026-11-01T00:00:00Z", "before start_date"),
        ("start_date=2026-01-01T00:00:00Z&end_date=2026-11-01T00:00:00Z", "90 days"),
        ("start_date=2026-01-01&start_date=2026-01-02", "more than once"),
        ("page=0", "page must be"),
        ("page_size=1001", "page_size must be"),
        ("page_size=abc", "page_size must be"),
    ],
)
async def test_bad_filters_are_400(
    client: TestClient, seeded: Seeded, query: str, fragment: str
) -> None:
    status, body = await get(client, query)
    assert status == 400
    assert all(set(e) == {"code", "description"} for e in body)
    assert any(fragment in e["description"] for e in body), body


async def test_ids_override_every_other_argument(client: TestClient, seeded: Seeded) -> None:
    n = seeded.numbers
    query = f"service_request_id={n['old']},{n['heating']}&status=closed&start_date=bad"
    status, body = await get(client, query)
    assert status == 200
    assert ids(body) == [n["heating"], n["old"]]  # old is outside the 90 days
    status, body = await get(client, f"service_request_id={n['handoff']},nope")
    assert status == 200 and body == []


async def test_one_request_by_id_is_a_one_element_list(client: TestClient, seeded: Seeded) -> None:
    number = seeded.numbers["noise"]
    response = await client.get(f"{BASE}/requests/{number}.json")
    assert response.status == 200
    body = await response.json()
    assert isinstance(body, list) and len(body) == 1
    assert body[0]["service_request_id"] == number
    _, listed = await get(client, f"service_request_id={number}")
    assert body == listed


@pytest.mark.parametrize("request_id", ["20000101-0001", "nope", "HANDOFF"])
async def test_unknown_request_is_404_error_list(
    client: TestClient, seeded: Seeded, request_id: str
) -> None:
    response = await client.get(f"{BASE}/requests/{request_id}.json")
    assert response.status == 404
    body = await response.json()
    assert body == [{"code": 404, "description": f"service_request_id {request_id} was not found"}]


async def test_handoff_ticket_is_not_published(client: TestClient, seeded: Seeded) -> None:
    response = await client.get(f"{BASE}/requests/{seeded.numbers['handoff']}.json")
    assert response.status == 404


async def test_database_failure_is_a_400_error_list(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("database is down")

    monkeypatch.setattr(open311_requests, "find_requests", broken)
    status, body = await get(client)
    assert status == 400
    assert body[0]["code"] == 400 and "service error" in body[0]["description"]


async def test_open311_tickets_are_listed_with_their_channel(
    client: TestClient, seeded: Seeded, api_key: str
) -> None:
    response = await client.post(
        URL, data={"api_key": api_key, "service_code": "PETS", "address_string": "裕园3号楼"}
    )
    number = (await response.json())[0]["service_request_id"]
    _, body = await get(client, "service_code=PETS")
    assert ids(body)[0] == number
    assert body[0]["channel"] == "open311" and body[0]["grid_code"] == "YY-01"


async def test_community_level_ticket_names_the_office(
    client: TestClient, demo_engine: Engine, read_key: str
) -> None:
    with session_scope(demo_engine) as session:
        t = _open(session, "dispute", "NEIGHBOUR_DISPUTE", "裕园10号楼", datetime.now(timezone.utc))
        number = t.number
    response = await client.get(f"{BASE}/requests/{number}.json", params={"api_key": read_key})
    request = (await response.json())[0]
    assert request["agency_responsible"] == "裕园社区居委会"
    assert (request["level"], request["grid_code"]) == ("community", "YY-02")
    assert "人民调解委员会" in request["service_notice"]
