"""GET services.json and services/{code}.json against taxonomy.yml."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from bot.open311.services import GROUPS
from bot.taxonomy import HANDOFF, get_taxonomy
from tests.web.open311.conftest import BASE

SERVICE_FIELDS = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
]


async def test_services_match_the_taxonomy_field_by_field(client: TestClient) -> None:
    response = await client.get(f"{BASE}/services.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.charset == "utf-8"
    services = await response.json()
    categories = get_taxonomy().categories
    assert [s["service_code"] for s in services] == [c.code for c in categories]
    for service, category in zip(services, categories, strict=True):
        assert list(service) == SERVICE_FIELDS
        assert service["service_code"] == category.code
        assert service["service_name"] == category.label
        assert service["description"] == category.covers
        assert service["metadata"] is False
        assert service["type"] == "realtime"
        assert service["group"] == GROUPS[category.kind]
        assert isinstance(service["keywords"], str)
        words = [w.strip() for w in service["keywords"].split(",")]
        assert words[0] == category.label
        assert GROUPS[category.kind] in words


async def test_keywords_carry_the_chinese_terms_of_covers(client: TestClient) -> None:
    services = {
        s["service_code"]: s for s in await (await client.get(f"{BASE}/services.json")).json()
    }
    assert "低保" in services["SUBSIDY"]["keywords"]
    assert "回迁选房" in services["RELOCATION"]["keywords"]


async def test_internal_handoff_is_not_a_service(client: TestClient) -> None:
    services = await (await client.get(f"{BASE}/services.json")).json()
    assert HANDOFF.code not in {s["service_code"] for s in services}
    response = await client.get(f"{BASE}/services/{HANDOFF.code}.json")
    assert response.status == 404


async def test_service_definition_of_a_service_without_metadata(client: TestClient) -> None:
    response = await client.get(f"{BASE}/services/HEATING.json")
    assert response.status == 200
    assert await response.json() == {"service_code": "HEATING", "attributes": []}


async def test_unknown_service_definition_is_a_404_error_list(client: TestClient) -> None:
    response = await client.get(f"{BASE}/services/NOPE.json")
    assert response.status == 404
    body = await response.json()
    assert body == [{"code": 404, "description": "service_code NOPE was not found"}]


async def test_other_paths_answer_the_error_list(client: TestClient) -> None:
    response = await client.get(f"{BASE}/services.yaml")
    assert response.status == 404
    body = await response.json()
    assert body[0]["code"] == 404 and isinstance(body[0]["description"], str)

    response = await client.delete(f"{BASE}/requests.json")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, POST"
    assert (await response.json())[0]["code"] == 405

    response = await client.post(f"{BASE}/services.json")
    assert response.status == 405
    assert (await response.json())[0]["code"] == 405
