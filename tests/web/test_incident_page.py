"""The worker's page of a fault reported by many: the reason shown, one action for all."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from bot.store.db import session_scope
from bot.store.models import Notification, Ticket
from tests.web.conftest import WebClient, add_ticket


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


async def test_neighbours_reports_are_one_incident_resolved_by_one_action(
    web_engine, worker_client: WebClient
) -> None:
    first = add_ticket(web_engine, "和平新村3号楼2单元501", sender_id="oA")
    second = add_ticket(web_engine, "和平新村3号楼1单元101", sender_id="oB")
    third = add_ticket(web_engine, "和平新村3号楼3单元301", sender_id="oC")
    page = text_of(await (await worker_client.get(f"/tickets/{second}")).text())
    assert "同一故障：3位居民反映" in page
    assert "合并依据：和平新村社区3号楼24小时内3位居民反映供暖供气" in page
    assert first in page and third in page

    refused = await worker_client.post_form(f"/tickets/{second}/resolve_incident", {"note": ""})
    assert refused.status == 400
    done = await worker_client.post_form(
        f"/tickets/{second}/resolve_incident", {"note": "热力公司换了单元总阀"}
    )
    assert done.status == 303
    with session_scope(web_engine, readonly=True) as session:
        assert set(session.execute(select(Ticket.status)).scalars()) == {"resolved"}
        told = session.execute(
            select(Notification.target, Notification.payload).where(
                Notification.channel == "wechat", Notification.kind == "resolved"
            )
        ).all()
    assert sorted(t for t, _ in told) == ["oA", "oB", "oC"]
    assert all("热力公司换了单元总阀" in p["text"] for _, p in told)


async def test_a_lone_report_has_no_incident(web_engine, worker_client: WebClient) -> None:
    number = add_ticket(web_engine, "和平新村3号楼2单元501", sender_id="oA")
    add_ticket(web_engine, "和平新村5号楼1单元101", sender_id="oB")  # another building
    page = text_of(await (await worker_client.get(f"/tickets/{number}")).text())
    assert "同一故障" not in page
    response = await worker_client.post_form(f"/tickets/{number}/resolve_incident", {"note": "x"})
    assert response.status == 400
