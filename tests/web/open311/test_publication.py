"""Publication (issue 15): private matters never public, coarse public records,
full records only with a read key, every full read recorded."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.apikeys import create_key, revoke_key
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.store.models import AccessRecord
from bot.tickets import service
from tests.web.open311.conftest import BASE

INHERITANCE_WORDS = "我爸去世了，我哥非要独占老房子，兄弟几个闹翻了，电话13912345678"
SUBSIDY_WORDS = "俺家就俺一个人下岗了没收入，想申请低保"
FACILITY_WORDS = "3号楼2单元501门口的路灯坏了，我是李大爷13800138000"


def _open(session, name: str, code: str, words: str, address: str) -> str:
    located = get_locator(session).locate_text(address)
    ticket = service.open_ticket(
        session,
        sender_id=f"wx-{name}",
        channel="wechat",
        message_id=f"m-{name}",
        category_code=code,
        description=words,
        location=located,
        now=datetime.now(timezone.utc),
    )
    return ticket.number


@pytest.fixture
def tickets(demo_engine: Engine) -> dict[str, str]:
    with session_scope(demo_engine) as session:
        return {
            "inheritance": _open(
                session, "inh", "INHERITANCE", INHERITANCE_WORDS, "和平新村3号楼2单元"
            ),
            "subsidy": _open(session, "sub", "SUBSIDY", SUBSIDY_WORDS, "和平新村4号楼1单元"),
            "facility": _open(session, "fac", "FACILITY", FACILITY_WORDS, "和平新村3号楼2单元501"),
        }


def _key(engine: Engine, *scopes: str) -> str:
    with session_scope(engine) as session:
        return create_key(session, "某系统", scopes=scopes).token


async def _list(client: TestClient, **params: str) -> tuple[int, Any, str]:
    response = await client.get(f"{BASE}/requests.json", params=params)
    text = await response.text()
    return response.status, await response.json(), text


def _records(engine: Engine) -> list[AccessRecord]:
    with session_scope(engine) as session:
        rows = session.execute(select(AccessRecord).order_by(AccessRecord.id)).scalars().all()
        session.expunge_all()
        return rows


async def test_private_matters_are_never_in_the_public_list(
    client: TestClient, tickets: dict[str, str]
) -> None:
    status, body, text = await _list(client)
    assert status == 200
    assert [r["service_request_id"] for r in body] == [tickets["facility"]]
    for secret in ("去世", "低保", "13912345678", "下岗", "INHERITANCE", "SUBSIDY"):
        assert secret not in text


@pytest.mark.parametrize("name", ["inheritance", "subsidy"])
async def test_a_private_matter_by_id_is_404_as_if_absent(
    client: TestClient, tickets: dict[str, str], name: str
) -> None:
    number = tickets[name]
    private = await client.get(f"{BASE}/requests/{number}.json")
    absent = await client.get(f"{BASE}/requests/20000101-0001.json")
    assert private.status == absent.status == 404
    body = await private.json()
    assert body == [{"code": 404, "description": f"service_request_id {number} was not found"}]
    _, listed, _ = await _list(client, service_request_id=number)
    assert listed == []


async def test_a_public_record_is_coarse_and_never_the_residents_words(
    client: TestClient, tickets: dict[str, str]
) -> None:
    _, body, text = await _list(client, service_request_id=tickets["facility"])
    record = body[0]
    assert record["service_code"] == "FACILITY" and record["service_name"] == "公共设施"
    assert record["address"] == "和平新村社区3号楼"  # no unit, no room
    assert record["community"] == "和平新村社区"
    assert record["description"] is None and record["media_url"] is None
    assert "lat" not in record and "long" not in record
    for secret in ("路灯坏了", "李大爷", "13800138000", "501", "2单元"):
        assert secret not in text


async def test_a_summary_staff_published_is_the_public_description(
    client: TestClient, demo_engine: Engine, tickets: dict[str, str]
) -> None:
    number = tickets["facility"]
    with session_scope(demo_engine) as session:
        service.add_note(session, number, "worker:1", "已报修，三天内更换灯泡")
        service.publish_summary(session, number, "worker:1", "  3号楼门口路灯不亮 ")
    _, body, text = await _list(client, service_request_id=number)
    assert body[0]["description"] == "3号楼门口路灯不亮"
    # the staff's note stays the status note; the summary is not a note
    assert body[0]["status_notes"] == "已报修，三天内更换灯泡"
    assert "李大爷" not in text
    with session_scope(demo_engine) as session:
        service.publish_summary(session, number, "worker:1", "")  # withdrawn
    _, body, _ = await _list(client, service_request_id=number)
    assert body[0]["description"] is None


async def test_a_read_key_gets_the_full_record_and_every_read_is_recorded(
    client: TestClient, demo_engine: Engine, tickets: dict[str, str]
) -> None:
    key = _key(demo_engine, "read")
    assert _records(demo_engine) == []
    status, body, _ = await _list(client, api_key=key)
    assert status == 200
    by_id = {r["service_request_id"]: r for r in body}
    assert set(by_id) == set(tickets.values())
    assert by_id[tickets["inheritance"]]["description"] == INHERITANCE_WORDS
    assert by_id[tickets["facility"]]["address"] == "和平新村社区3号楼2单元501室"
    response = await client.get(
        f"{BASE}/requests/{tickets['subsidy']}.json", headers={"X-Api-Key": key}
    )
    assert (await response.json())[0]["description"] == SUBSIDY_WORDS
    records = _records(demo_engine)
    assert [r.action for r in records] == ["open311_full_read"] * 2
    prefix = key.split(".")[0]
    assert all(r.actor == f"apikey:{prefix}" and r.actor_name == "某系统" for r in records)
    assert tickets["inheritance"] in records[0].target
    assert records[1].target == tickets["subsidy"]


async def test_a_public_read_writes_no_access_record(
    client: TestClient, demo_engine: Engine, tickets: dict[str, str]
) -> None:
    await _list(client)
    await client.get(f"{BASE}/requests/{tickets['facility']}.json")
    assert _records(demo_engine) == []


async def test_a_write_only_key_reads_what_the_public_reads(
    client: TestClient, demo_engine: Engine, tickets: dict[str, str]
) -> None:
    key = _key(demo_engine, "write")
    _, public, _ = await _list(client)
    status, body, text = await _list(client, api_key=key)
    assert status == 200 and body == public
    assert "去世" not in text and "低保" not in text
    response = await client.get(f"{BASE}/requests/{tickets['inheritance']}.json?api_key={key}")
    assert response.status == 404
    assert _records(demo_engine) == []


@pytest.mark.parametrize(
    "forged",
    ["deadbeef.not-a-real-secret", "nodot", "x" * 300, ".", "' OR 1=1 --"],
)
async def test_a_forged_key_gets_403_and_no_private_field(
    client: TestClient, demo_engine: Engine, tickets: dict[str, str], forged: str
) -> None:
    status, body, text = await _list(client, api_key=forged)
    assert status == 403
    assert body == [{"code": 403, "description": "api_key is not valid"}]
    assert "去世" not in text
    response = await client.get(
        f"{BASE}/requests/{tickets['inheritance']}.json", params={"api_key": forged}
    )
    assert response.status == 403
    assert _records(demo_engine) == []


async def test_a_revoked_read_key_gets_nothing_private(
    client: TestClient, demo_engine: Engine, tickets: dict[str, str]
) -> None:
    key = _key(demo_engine, "read", "write")
    assert (await _list(client, api_key=key))[0] == 200
    with session_scope(demo_engine) as session:
        revoke_key(session, key.split(".")[0])
    status, _, text = await _list(client, api_key=key)
    assert status == 403 and "去世" not in text
    assert len(_records(demo_engine)) == 1  # only the read before revocation


async def test_a_phone_or_room_in_a_staff_note_is_masked_in_public(
    client: TestClient, demo_engine: Engine, tickets: dict[str, str]
) -> None:
    number = tickets["facility"]
    with session_scope(demo_engine) as session:
        service.add_note(session, number, "worker:1", "已联系住2单元501的李大爷，电话13800138000")
    _, body, text = await _list(client, service_request_id=number)
    assert body[0]["status_notes"] == "已联系住2单元【房号】的李大爷，电话【电话】"
    assert "13800138000" not in text
