"""A worker gives a ticket another category (the review inbox's strongest hint)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bot.store.db import session_scope
from bot.store.models import utcnow
from bot.taxonomy import get_taxonomy
from bot.tickets import service
from tests.web.conftest import WebClient, add_ticket

HPXC = "和平新村3号楼2单元501"  # grid HPXC-01 (王芳)


def test_recategorise_records_a_note_and_moves_the_deadline(web_engine) -> None:
    opened = utcnow() - timedelta(hours=2)
    number = add_ticket(web_engine, HPXC, "NOISE", now=opened)  # 48 h SLA
    with session_scope(web_engine) as session:
        ticket = service.recategorise(
            session, number, "PETS", "worker:1:王芳", reason="其实是狗叫", now=utcnow()
        )
        assert (ticket.category_code, ticket.kind, ticket.status) == ("PETS", "complaint", "open")
        assert ticket.due_at == opened + timedelta(hours=72)  # same start, the new SLA
        event = ticket.events[-1]
        assert event.type == "note" and event.actor == "worker:1:王芳"
        assert event.data == {"category_from": "NOISE", "category_to": "PETS"}
        assert event.note == "类别由“噪音扰民”改为“文明养犬”：其实是狗叫"
        assert ticket.level == "grid" and ticket.grid.code == "HPXC-01"  # routing stays


def test_recategorise_refusals(web_engine) -> None:
    number = add_ticket(web_engine, HPXC, "NOISE")
    with session_scope(web_engine) as session:
        with pytest.raises(ValueError, match="已是"):
            service.recategorise(session, number, "NOISE", "worker:1:王芳")
        with pytest.raises(ValueError, match="unknown category"):
            service.recategorise(session, number, "NOPE", "worker:1:王芳")
        with pytest.raises(ValueError, match="HANDOFF"):
            service.recategorise(session, number, "HANDOFF", "worker:1:王芳")
        service.resolve(session, number, "worker:1:王芳", note="好了")
        service.close(session, number, "resident")
    with session_scope(web_engine) as session:
        with pytest.raises(ValueError, match="已办结"):
            service.recategorise(session, number, "PETS", "worker:1:王芳")


async def test_worker_changes_the_category_on_the_ticket_page(
    worker_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, HPXC, "NOISE")
    page = await (await worker_client.get(f"/tickets/{number}")).text()
    assert f'action="/tickets/{number}/recategorise"' in page
    labels = re.findall(r'<option value="([A-Z_]+)"', page.split("recategorise", 1)[1])
    expected = [c.code for c in get_taxonomy().categories if c.code != "NOISE"]
    assert labels[: len(expected)] == expected

    refused = await worker_client.post_form(f"/tickets/{number}/recategorise", {"category": ""})
    assert refused.status == 400 and "请选择新的类别" in await refused.text()
    response = await worker_client.post_form(
        f"/tickets/{number}/recategorise", {"category": "PETS", "note": "是狗叫"}
    )
    assert response.status == 303
    shown = await (await worker_client.get(response.headers["Location"])).text()
    assert "工单类别已修改" in shown and "<h1>文明养犬</h1>" in shown
    assert "类别由“噪音扰民”改为“文明养犬”：是狗叫" in shown
    # without the CSRF token nothing changes
    blocked = await worker_client.post_form(
        f"/tickets/{number}/recategorise", {"category": "HEATING"}, csrf=False
    )
    assert blocked.status == 403
    with session_scope(web_engine, readonly=True) as session:
        assert service.get_ticket(session, number).category_code == "PETS"


async def test_other_grids_workers_cannot_recategorise(client_factory, web_engine) -> None:
    number = add_ticket(web_engine, HPXC, "NOISE")
    other = await client_factory("other_worker")  # 陈静, YY-01
    response = await other.post_form(f"/tickets/{number}/recategorise", {"category": "PETS"})
    assert response.status == 404
    with session_scope(web_engine, readonly=True) as session:
        assert service.get_ticket(session, number).category_code == "NOISE"
