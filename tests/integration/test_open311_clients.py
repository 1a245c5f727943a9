"""Open311 against the running web app, driven by a published client library.

The web app runs as `python -m bot web` (its own process, free port, fresh
SQLite database with the demo grid directory). `georeport` (PyPI, GeoReport v2
client; JSON and XML modes, parsing XML with xmltodict) reads services,
service definitions, requests and single requests exactly as it does from a
city's endpoint. It has no POST, so requests and updates are posted as
FixMyStreet posts them (form-encoded, to `requests.xml` and
`servicerequestupdates.xml`) with `requests`; every XML answer is also checked
element by element against the specification's names.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bot.apikeys import create_key
from bot.store.db import make_engine, session_scope
from bot.tickets import photos
from bot.tickets.service import get_ticket
from tests.conftest import running_stack
from tests.fakes import JPEG_HEAD

# A pinned dev dependency (pyproject.toml); a virtualenv made before it was
# added says so instead of failing to collect (`make install` brings it).
GeoReport = pytest.importorskip(
    "georeport", reason="georeport (dev extra) is not installed: run make install"
).GeoReport

HTTP_TIMEOUT = 30
HEATING_ADDRESS = "和平新村3号楼2单元501"

SERVICE_ELEMENTS = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
]
REQUEST_ELEMENTS = [
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
]
UPDATE_ELEMENTS = [
    "update_id",
    "service_request_id",
    "status",
    "updated_datetime",
    "description",
    "media_url",
]


@dataclass
class Open311App:
    url: str  # the GeoReport v2 endpoint, .../open311/v2
    base: str  # the web app
    api_key: str
    database_url: str
    photo_dir: Path


@pytest.fixture(scope="module")
def open311_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Open311App]:
    workdir = tmp_path_factory.mktemp("open311-app")
    # Only the web app: no model is loaded, so none is trained for this test.
    photo_dir = workdir / "photos"
    with running_stack(
        workdir,
        model=Path("unused"),
        only=("web",),
        env={"PHOTO_DIR": str(photo_dir)},
        timeout=120,
    ) as stack:
        engine = make_engine(stack.database_url)
        with session_scope(engine) as session:
            token = create_key(session, "市12345平台", created_by="tests").token
        engine.dispose()
        yield Open311App(
            url=stack.web_url + "/open311/v2",
            base=stack.web_url,
            api_key=token,
            database_url=stack.database_url,
            photo_dir=photo_dir,
        )


def xml_of(response: requests.Response) -> ET.Element:
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    return ET.fromstring(response.content)


def post_request(app: Open311App, fmt: str, description: str) -> str:
    response = requests.post(
        f"{app.url}/requests.{fmt}",
        data={
            "api_key": app.api_key,
            "service_code": "HEATING",
            "address_string": HEATING_ADDRESS,
            "description": description,
            "email": "someone@example.com",
            "media_url": "https://example.com/photo.jpg",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    if fmt == "json":
        return response.json()[0]["service_request_id"]
    root = xml_of(response)
    assert root.tag == "service_requests"
    assert [c.tag for c in root.find("request")] == [  # type: ignore[union-attr]
        "service_request_id",
        "service_notice",
        "account_id",
    ]
    return root.findtext("request/service_request_id") or ""


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_published_client_reads_every_resource(open311_app: Open311App, fmt: str) -> None:
    client = GeoReport(open311_app.url, output_format=fmt)

    services = client.get_service_list()
    codes = [s["service_code"] for s in services]
    assert "HEATING" in codes and "HANDOFF" not in codes
    heating = next(s for s in services if s["service_code"] == "HEATING")
    assert heating["service_name"] == "供暖供气"
    assert heating["metadata"] in (False, "false")

    definition = client.get_service_definition("HEATING")
    assert definition["service_code"] == "HEATING"

    number = post_request(open311_app, fmt, f"暖气不热（{fmt}）")
    found = client.get_service_requests(service_request_id=number)
    # xmltodict reads one <request> as a dict, several as a list
    found = found if isinstance(found, list) else [found]
    assert [r["service_request_id"] for r in found] == [number]
    one = client.get_service_request(number)
    assert one["service_request_id"] == number
    assert one["status"] == "open"
    assert one["service_code"] == "HEATING"
    # Without a read key the record is the public one (bot.tickets.publication):
    # the words and the photo the submitter sent are not published.
    assert not one["description"] and not one["media_url"]
    assert f"暖气不热（{fmt}）" not in str(one)
    # The contact details never become public.
    assert "someone@example.com" not in str(one)

    listed = client.get_service_requests(status="open", service_code="HEATING")
    listed = listed if isinstance(listed, list) else [listed]
    assert number in [r["service_request_id"] for r in listed]

    with pytest.raises(requests.HTTPError) as raised:
        client.get_service_request("20990101-0001")
    assert raised.value.response.status_code == 404


def test_xml_answers_carry_the_specifications_element_names(open311_app: Open311App) -> None:
    url = open311_app.url
    number = post_request(open311_app, "xml", "楼道灯坏了")

    services = xml_of(requests.get(f"{url}/services.xml", timeout=HTTP_TIMEOUT))
    assert services.tag == "services"
    assert {c.tag for c in services} == {"service"}
    for service in services:
        assert [c.tag for c in service] == SERVICE_ELEMENTS

    definition = xml_of(requests.get(f"{url}/services/HEATING.xml", timeout=HTTP_TIMEOUT))
    assert definition.tag == "service_definition"
    assert [c.tag for c in definition] == ["service_code", "attributes"]

    listed = xml_of(
        requests.get(
            f"{url}/requests.xml", params={"service_request_id": number}, timeout=HTTP_TIMEOUT
        )
    )
    assert listed.tag == "service_requests"
    [request] = list(listed)
    assert request.tag == "request"
    tags = [c.tag for c in request]
    assert tags[: len(REQUEST_ELEMENTS)] == REQUEST_ELEMENTS
    assert "media_url" in tags

    missing = requests.get(f"{url}/requests/20990101-0001.xml", timeout=HTTP_TIMEOUT)
    assert missing.status_code == 404
    errors = xml_of(missing)
    assert errors.tag == "errors"
    assert [c.tag for c in errors[0]] == ["code", "description"]

    discovery = requests.get(f"{open311_app.base}/open311/discovery.xml", timeout=HTTP_TIMEOUT)
    root = xml_of(discovery)
    assert root.tag == "discovery"
    assert root.findtext("endpoints/endpoint/url") == url
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]

    assert requests.get(f"{url}/services.yaml", timeout=HTTP_TIMEOUT).status_code == 404
    bad = requests.post(
        f"{url}/requests.xml",
        params={"api_key": open311_app.api_key},
        data=b"<service_request><service_code>",
        headers={"Content-Type": "text/xml"},
        timeout=HTTP_TIMEOUT,
    )
    assert bad.status_code == 400
    assert xml_of(bad).tag == "errors"


def test_a_city_system_follows_and_updates_a_ticket_as_fixmystreet_does(
    open311_app: Open311App,
) -> None:
    url = open311_app.url
    number = post_request(open311_app, "xml", "井盖丢了")
    posted = requests.post(
        f"{url}/servicerequestupdates.xml",
        data={
            "api_key": open311_app.api_key,
            "service_request_id": number,
            "update_id": "fms-comment-1",
            "status": "FIXED",
            "updated_datetime": "2026-12-06T10:00:00Z",
            "description": "已更换井盖",
            "email": "clerk@example.com",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert posted.status_code == 200, posted.text
    root = xml_of(posted)
    assert root.tag == "service_request_updates"
    update_id = root.findtext("request_update/update_id")
    assert update_id

    # Replayed: the same answer.
    again = requests.post(
        f"{url}/servicerequestupdates.xml",
        data={
            "api_key": open311_app.api_key,
            "service_request_id": number,
            "update_id": "fms-comment-1",
            "status": "FIXED",
            "description": "已更换井盖",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert xml_of(again).findtext("request_update/update_id") == update_id

    listed = xml_of(requests.get(f"{url}/servicerequestupdates.xml", timeout=HTTP_TIMEOUT))
    assert listed.tag == "service_request_updates"
    mine = [u for u in listed if u.findtext("service_request_id") == number]
    assert [u.findtext("update_id") for u in mine] == [update_id]
    assert [c.tag for c in mine[0]] == UPDATE_ELEMENTS
    assert mine[0].findtext("status") == "fixed"
    assert mine[0].findtext("description") == "已更换井盖"
    assert "clerk@example.com" not in listed_text(listed)

    # The request itself now reads closed, in both formats.
    client = GeoReport(url, output_format="xml")
    assert client.get_service_request(number)["status"] == "closed"
    assert GeoReport(url).get_service_request(number)["status"] == "closed"

    unknown = requests.post(
        f"{url}/servicerequestupdates.xml",
        data={
            "api_key": open311_app.api_key,
            "service_request_id": "20990101-0001",
            "update_id": "fms-comment-2",
            "status": "FIXED",
            "description": "?",
        },
        timeout=HTTP_TIMEOUT,
    )
    assert unknown.status_code == 404
    assert xml_of(unknown).findtext("error/code") == "404"


def listed_text(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_media_url_is_the_staffs_photo_served_by_the_web_app(
    open311_app: Open311App, fmt: str
) -> None:
    number = post_request(open311_app, fmt, f"路灯修好了吗（{fmt}）")
    stored = photos.PhotoStore(open311_app.photo_dir).save(JPEG_HEAD, 10_000)
    engine = make_engine(open311_app.database_url)
    with session_scope(engine) as session:
        ticket = get_ticket(session, number)
        photos.attach_stored(session, ticket, [stored], source="worker", actor="worker:1")
    engine.dispose()

    url = GeoReport(open311_app.url, output_format=fmt).get_service_request(number)["media_url"]
    assert url.startswith(open311_app.url + "/media/") and url.endswith(".jpg")
    image = requests.get(url, timeout=HTTP_TIMEOUT)
    assert image.status_code == 200 and image.content == JPEG_HEAD
    assert image.headers["Content-Type"] == "image/jpeg"
