"""Staff publish a cleaned summary for the public record on the ticket page."""

from __future__ import annotations

import pytest

from bot.store.db import session_scope
from bot.tickets import service
from tests.web.conftest import WebClient, add_ticket


async def _public_description(client: WebClient, number: str) -> object:
    response = await client.get(f"/open311/v2/requests/{number}.json")
    if response.status == 404:
        return 404
    return (await response.json())[0]["description"]


@pytest.fixture
async def public(client_factory) -> WebClient:
    return await client_factory()


async def test_staff_publish_and_withdraw_a_summary(
    worker_client: WebClient, web_engine, public: WebClient
) -> None:
    number = add_ticket(web_engine, "和平新村3号楼2单元501", "FACILITY", description="路灯坏了")
    page = await (await worker_client.get(f"/tickets/{number}")).text()
    assert "公开摘要" in page and "此类事项可公开" in page
    assert await _public_description(public, number) is None

    response = await worker_client.post_form(
        f"/tickets/{number}/publish", {"note": "3号楼门口路灯不亮"}
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/tickets/{number}?done=publish"
    assert await _public_description(public, number) == "3号楼门口路灯不亮"
    page = await (await worker_client.get(response.headers["Location"])).text()
    assert "公开摘要已更新" in page and "（已公开）" in page

    assert (await worker_client.post_form(f"/tickets/{number}/publish", {"note": ""})).status == 303
    assert await _public_description(public, number) is None
    with session_scope(web_engine, readonly=True) as session:
        notes = [e.note for e in service.get_ticket(session, number).events if e.type == "note"]
    assert notes == ["公开摘要：3号楼门口路灯不亮", "公开摘要：（已撤回）"]


async def test_a_private_matter_stays_private_even_with_a_summary(
    staff_client: WebClient, web_engine, public: WebClient
) -> None:
    number = add_ticket(web_engine, "和平新村3号楼2单元501", "SUBSIDY", description="想申请低保")
    page = await (await staff_client.get(f"/tickets/{number}")).text()
    assert "不会公开" in page
    assert (
        await staff_client.post_form(f"/tickets/{number}/publish", {"note": "低保咨询"})
    ).status == 303
    assert await _public_description(public, number) == 404


async def test_a_too_long_summary_is_refused(worker_client: WebClient, web_engine) -> None:
    number = add_ticket(web_engine, "和平新村3号楼2单元501", "FACILITY")
    response = await worker_client.post_form(f"/tickets/{number}/publish", {"note": "灯" * 501})
    assert response.status == 400 and "公开摘要太长了" in await response.text()
    with session_scope(web_engine, readonly=True) as session:
        assert service.get_ticket(session, number).public_summary is None


async def test_publishing_needs_csrf_and_visibility(
    other_worker_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, "和平新村3号楼2单元501", "FACILITY")
    # another grid's worker: 404 as for any action
    response = await other_worker_client.post_form(f"/tickets/{number}/publish", {"note": "x"})
    assert response.status == 404
    response = await other_worker_client.post_form(
        f"/tickets/{number}/publish", {"note": "x"}, csrf=False
    )
    assert response.status in (400, 403)
    with session_scope(web_engine, readonly=True) as session:
        assert service.get_ticket(session, number).public_summary is None
