"""Staff access is recorded (append-only) and admins list it; the CSV export is
masked unless an admin asks for the full one (issue 15, items 3 and 6)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import access_log
from bot.store.db import session_scope
from bot.store.models import AccessRecord, UnauditedChange
from tests.web.conftest import ACCOUNTS, WebClient, add_ticket

WORDS = "暖气不热，电话13812345678，身份证370102198001011237"


def records(engine) -> list[tuple[str, str, str | None]]:
    with session_scope(engine, readonly=True) as session:
        rows = session.execute(select(AccessRecord).order_by(AccessRecord.id)).scalars()
        return [(r.action, r.actor_name, r.target) for r in rows]


async def test_opening_a_ticket_page_is_recorded(
    worker_client: WebClient, other_worker_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, description=WORDS)
    assert (await worker_client.get(f"/tickets/{number}")).status == 200
    # another grid's worker: 404, nothing seen, nothing recorded
    assert (await other_worker_client.get(f"/tickets/{number}")).status == 404
    assert records(web_engine) == [("ticket_page", ACCOUNTS["worker"].name, number)]


async def test_the_csv_is_masked_unless_the_full_one_is_asked_for(
    admin_client: WebClient, web_engine
) -> None:
    add_ticket(web_engine, "和平新村3号楼2单元501", description=WORDS)
    masked = await (await admin_client.get("/admin/tickets.csv?from=&to=")).text()
    assert "【电话】" in masked and "【身份证号】" in masked and "【房号】" in masked
    for secret in ("13812345678", "370102198001011237", "501"):
        assert secret not in masked
    full = await (await admin_client.get("/admin/tickets.csv?from=&to=&full=1")).text()
    assert "13812345678" in full and "2单元501室" in full
    assert [r[0] for r in records(web_engine)] == ["csv_export", "csv_export_full"]


async def test_opening_the_review_inbox_is_recorded(admin_client: WebClient, web_engine) -> None:
    assert (await admin_client.get("/admin/review?status=open")).status == 200
    assert records(web_engine) == [("review_inbox", "管理员", "status=open")]


async def test_admins_list_and_filter_access_records(
    admin_client: WebClient, worker_client: WebClient, staff_client: WebClient, web_engine
) -> None:
    first = add_ticket(web_engine, description="甲")
    second = add_ticket(web_engine, description="乙")
    await worker_client.get(f"/tickets/{first}")
    await staff_client.get(f"/tickets/{second}")
    await admin_client.get("/admin/tickets.csv?from=&to=")

    page = await (await admin_client.get("/admin/access")).text()
    assert first in page and second in page and "导出CSV（已遮蔽）" in page
    page = await (await admin_client.get(f"/admin/access?target={first}")).text()
    assert first in page and second not in page
    name = ACCOUNTS["staff"].name
    page = await (await admin_client.get(f"/admin/access?actor={name}")).text()
    assert second in page and first not in page
    page = await (await admin_client.get("/admin/access?action=csv_export")).text()
    assert first not in page and "导出CSV（已遮蔽）" in page
    page = await (await admin_client.get("/admin/access?action=nope&from=yesterday")).text()
    assert "未知的操作类型" in page and "日期格式" in page
    page = await (await admin_client.get("/admin/access?from=2000-01-01&to=2000-01-02")).text()
    assert "没有符合条件的访问记录" in page


async def test_only_admins_see_access_records(worker_client: WebClient) -> None:
    assert (await worker_client.get("/admin/access")).status == 403


def test_access_records_are_append_only(web_engine) -> None:
    with session_scope(web_engine) as session:
        access_log.record(session, "worker:1", access_log.TICKET_PAGE, "20261127-0001")
    with pytest.raises(UnauditedChange), session_scope(web_engine) as session:
        session.execute(select(AccessRecord)).scalar_one().target = "20261127-0002"
    with pytest.raises(UnauditedChange), session_scope(web_engine) as session:
        session.delete(session.execute(select(AccessRecord)).scalar_one())
    with pytest.raises(ValueError), session_scope(web_engine) as session:
        access_log.record(session, "worker:1", "looked_around")
    assert records(web_engine) == [("ticket_page", None, "20261127-0001")]
