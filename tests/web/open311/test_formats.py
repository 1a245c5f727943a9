"""Both formats: every resource as .xml with the specification's element names,
the same data and errors as .json; discovery; bad formats and bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine

from bot.open311 import answers
from bot.store.db import session_scope
from bot.tickets import service
from tests.web.open311.conftest import BASE

HEATING_ADDRESS = "和平新村3号楼2单元501"


async def get_xml(client: TestClient, path: str, status: int = 200) -> ET.Element:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "text/xml"
    assert response.charset == "utf-8"
    raw = await response.read()
    assert raw.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(raw)


def as_json_value(value: Any) -> str | None:
    """How a JSON value reads in the XML (None: an empty element)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def assert_same_entries(root: ET.Element, item: str, entries: list[dict[str, Any]]) -> None:
    """Every entry of the JSON list is one <item> with the same fields in order."""
    assert [child.tag for child in root] == [item] * len(entries)
    for element, entry in zip(root, entries, strict=True):
        assert [child.tag for child in element] == list(entry)
        for child, (name, value) in zip(element, entry.items(), strict=True):
            if isinstance(value, list):
                assert len(child) == len(value), name
            else:
                assert child.text == as_json_value(value), name


def assert_errors(root: ET.Element, code: int, fragment: str = "") -> None:
    assert root.tag == "errors"
    assert len(root) >= 1
    for error in root:
        assert error.tag == "error"
        assert [c.tag for c in error] == ["code", "description"]
    assert root[0].findtext("code") == str(code)
    assert fragment in " ".join(e.findtext("description") or "" for e in root)


@pytest.fixture
def heating(demo_engine: Engine) -> str:
    from bot.routing.locator import get_locator

    with session_scope(demo_engine) as session:
        located = get_locator(session).locate_text(HEATING_ADDRESS)
        ticket = service.open_ticket(
            session,
            sender_id="wx-heating",
            channel="wechat",
            message_id="m-heating",
            category_code="HEATING",
            description="暖气不热 <b>&amp;</b>",
            location=located,
        )
        ticket.photos = ["https://example.com/heating.jpg"]
        service.accept(session, ticket, actor="worker:1", note="明早上门")
        return ticket.number


# -- the renderer -------------------------------------------------------------------


def test_nested_lists_use_the_specifications_item_names() -> None:
    definition = {
        "service_code": "X",
        "attributes": [
            {
                "variable": True,
                "code": "kind",
                "values": [{"key": "1", "name": "甲"}, {"key": "2", "name": "乙"}],
            }
        ],
    }
    root = ET.fromstring(answers.to_xml(answers.Answer(definition, answers.SERVICE_DEFINITION)))
    assert root.tag == "service_definition"
    attribute = root.find("attributes/attribute")
    assert attribute is not None and attribute.findtext("variable") == "true"
    assert [v.findtext("name") for v in attribute.findall("values/value")] == ["甲", "乙"]


def test_characters_xml_cannot_carry_become_replacement_characters() -> None:
    body = [{"description": "a\x00b\x1bc\ufffe", "lat": 36.5, "address_id": None}]
    raw = answers.to_xml(answers.Answer(body, answers.REQUESTS))
    request = ET.fromstring(raw).find("request")
    assert request is not None
    assert request.findtext("description") == "a\ufffdb\ufffdc\ufffd"
    assert request.findtext("lat") == "36.5"
    address_id = request.find("address_id")
    assert address_id is not None and address_id.text is None and len(address_id) == 0


def test_markup_in_text_stays_text() -> None:
    body = [{"description": "</description><x>&"}]
    raw = answers.to_xml(answers.Answer(body, answers.REQUESTS))
    assert b"<x>" not in raw
    assert ET.fromstring(raw).findtext("request/description") == "</description><x>&"


# -- GET resources ----------------------------------------------------------------


async def test_services_xml_is_services_json(client: TestClient) -> None:
    entries = await (await client.get(f"{BASE}/services.json")).json()
    root = await get_xml(client, f"{BASE}/services.xml")
    assert root.tag == "services"
    assert_same_entries(root, "service", entries)
    assert root.find("service/metadata").text == "false"  # type: ignore[union-attr]


async def test_service_definition_xml(client: TestClient) -> None:
    root = await get_xml(client, f"{BASE}/services/HEATING.xml")
    assert root.tag == "service_definition"
    assert [c.tag for c in root] == ["service_code", "attributes"]
    assert root.findtext("service_code") == "HEATING"
    assert len(root.find("attributes")) == 0  # type: ignore[arg-type]

    assert_errors(await get_xml(client, f"{BASE}/services/NOPE.xml", 404), 404, "NOPE")


async def test_requests_xml_is_requests_json(
    client: TestClient, heating: str, read_key: str
) -> None:
    entries = await (await client.get(f"{BASE}/requests.json")).json()
    assert [e["service_request_id"] for e in entries] == [heating]
    root = await get_xml(client, f"{BASE}/requests.xml")
    assert root.tag == "service_requests"
    assert_same_entries(root, "request", entries)
    request = root[0]
    # the public record: no resident's words, no photo (bot.tickets.publication)
    assert not request.findtext("description") and not request.findtext("media_url")
    assert request.findtext("status") == "open"
    assert request.findtext("status_notes") == "明早上门"
    # the full record, with a read key, is the same in both formats too
    full = f"api_key={read_key}"
    entries = await (await client.get(f"{BASE}/requests.json?{full}")).json()
    root = await get_xml(client, f"{BASE}/requests.xml?{full}")
    assert_same_entries(root, "request", entries)
    request = root[0]
    assert request.findtext("description") == "暖气不热 <b>&amp;</b>"
    assert request.findtext("media_url") == "https://example.com/heating.jpg"


async def test_one_request_xml_and_its_404(client: TestClient, heating: str) -> None:
    entries = await (await client.get(f"{BASE}/requests/{heating}.json")).json()
    root = await get_xml(client, f"{BASE}/requests/{heating}.xml")
    assert root.tag == "service_requests"
    assert_same_entries(root, "request", entries)

    assert_errors(await get_xml(client, f"{BASE}/requests/20990101-0001.xml", 404), 404)


async def test_bad_filters_answer_the_error_list_in_xml(client: TestClient) -> None:
    root = await get_xml(client, f"{BASE}/requests.xml?status=bogus&start_date=yesterday", 400)
    assert_errors(root, 400)
    assert len(root) == 2  # both problems listed


async def test_discovery_in_both_formats(client: TestClient) -> None:
    response = await client.get("/open311/discovery.json")
    assert response.status == 200
    document = await response.json()
    assert list(document) == ["changeset", "contact", "key_service", "endpoints"]
    [endpoint] = document["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2")
    assert endpoint["type"] == "test"  # no WeChat secret: development mode
    assert endpoint["formats"] == ["text/xml", "application/json"]

    root = await get_xml(client, "/open311/discovery.xml")
    assert root.tag == "discovery"
    assert [c.tag for c in root] == ["changeset", "contact", "key_service", "endpoints"]
    xml_endpoint = root.find("endpoints/endpoint")
    assert xml_endpoint is not None
    assert xml_endpoint.findtext("url") == endpoint["url"]
    assert [f.text for f in xml_endpoint.findall("formats/format")] == endpoint["formats"]


# -- unknown formats and paths ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{BASE}/services.yaml",
        f"{BASE}/services/HEATING.yaml",
        f"{BASE}/requests.yaml",
        f"{BASE}/requests.XML",
        f"{BASE}/requests",
        "/open311/discovery.yaml",
        f"{BASE}/tokens/abc.xml",
    ],
)
async def test_unknown_formats_and_paths_are_404(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    if path.endswith(".xml"):
        assert_errors(ET.fromstring(await response.read()), 404)
    else:
        body = await response.json()
        assert body[0]["code"] == 404


async def test_wrong_method_is_405_in_the_requested_format(client: TestClient) -> None:
    response = await client.delete(f"{BASE}/requests.xml")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, POST"
    assert_errors(ET.fromstring(await response.read()), 405)

    response = await client.post(f"{BASE}/requests/20990101-0001.xml")
    assert response.status == 405
    assert response.headers["Allow"] == "GET"


# -- POST ----------------------------------------------------------------------------

FIELDS = {"service_code": "HEATING", "address_string": HEATING_ADDRESS, "description": "不热"}


async def test_post_requests_xml(client: TestClient, api_key: str) -> None:
    response = await client.post(f"{BASE}/requests.xml", data={**FIELDS, "api_key": api_key})
    assert response.status == 200
    assert response.content_type == "text/xml"
    root = ET.fromstring(await response.read())
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None
    assert [c.tag for c in request] == ["service_request_id", "service_notice", "account_id"]
    number = request.findtext("service_request_id")
    found = await get_xml(client, f"{BASE}/requests/{number}.xml")
    assert found.findtext("request/service_code") == "HEATING"


async def test_post_errors_in_xml(client: TestClient, api_key: str) -> None:
    response = await client.post(f"{BASE}/requests.xml", data=FIELDS)
    assert response.status == 403
    assert_errors(ET.fromstring(await response.read()), 403, "api_key")

    response = await client.post(
        f"{BASE}/requests.xml", data={"api_key": api_key, "service_code": "NOPE", "lat": "x"}
    )
    assert response.status == 400
    root = ET.fromstring(await response.read())
    assert_errors(root, 400)
    assert len(root) >= 2


async def test_an_xml_body_is_read_as_fields(client: TestClient, api_key: str) -> None:
    fields = "".join(f"<{k}>{v}</{k}>" for k, v in {**FIELDS, "api_key": api_key}.items())
    response = await client.post(
        f"{BASE}/requests.json",
        data=f"<service_request>{fields}</service_request>".encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    assert response.status == 200, await response.text()
    [created] = await response.json()
    assert created["service_request_id"]


MALFORMED = [
    ("application/json", b'{"service_code": "HEATING",'),
    ("application/json", b"\xff\xfe not utf-8"),
    ("application/json", b'["a list"]'),
    ("text/xml", b"<service_request><service_code>HEATING</service_request>"),
    ("application/xml", b"not xml at all"),
    (
        "text/xml",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r><description>&b;</description></r>',
    ),
    ("text/xml", b"<r><service_code><nested/></service_code></r>"),
]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(("content_type", "raw"), MALFORMED)
async def test_malformed_bodies_are_400_in_the_requested_format(
    client: TestClient, api_key: str, fmt: str, content_type: str, raw: bytes
) -> None:
    response = await client.post(
        f"{BASE}/requests.{fmt}?api_key={api_key}",
        data=raw,
        headers={"Content-Type": content_type},
    )
    assert response.status == 400
    if fmt == "xml":
        assert response.content_type == "text/xml"
        assert_errors(ET.fromstring(await response.read()), 400)
    else:
        assert response.content_type == "application/json"
        body = await response.json()
        assert body[0]["code"] == 400
