"""The review inbox: grouping, sorting, filtering, paging and the decisions."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.review.groups import rebuild_groups
from bot.review.inbox import SORTS, DecisionRefused, InboxQuery, decide, load_inbox, undo
from bot.review.text import text_hash
from bot.store.db import session_scope
from bot.store.models import ReviewDecision, ReviewGroup, utcnow
from bot.tickets import service
from tests.fakes import TrackerLog
from tests.web.conftest import add_ticket

TZ = "Asia/Shanghai"
ADMIN = "worker:9:管理员"


def page(engine, **params: str):
    with session_scope(engine, readonly=True) as session:
        return load_inbox(session, InboxQuery.from_params(params), TZ)


def texts(engine, **params: str) -> list[str]:
    return [row.text for row in page(engine, **params).rows]


def act(engine, texts_: list[str], action: str, label: str | None = None):
    with session_scope(engine) as session:
        return decide(session, [text_hash(t) for t in texts_], action, ADMIN, label=label)


@pytest.fixture
def sample(web_engine, tracker: TrackerLog, copy_log) -> TrackerLog:
    """Five groups of messages, one of them three near-duplicates."""
    tracker.user("2号楼暖气不热", "report_heating", 0.55, "report_facility", 0.40)
    tracker.user("3号楼暖气不热！", "report_heating", 0.35, "report_facility", 0.30, sender="oB")
    tracker.user("5号楼 暖气不热", "report_heating", 0.75, "report_facility", 0.20, sender="oC")
    tracker.user("楼上装修太吵", "report_noise", 0.90, "dispute_neighbour", 0.05)
    tracker.user("今天天气怎么样", "out_of_scope", 0.45, "greet", 0.44, fallback=True)
    tracker.user("谢谢你们", "thank", 0.99, "goodbye", 0.01)
    tracker.user("狗屎没人管", "report_sanitation", 0.60, "report_pet", 0.38)
    copy_log()
    return tracker


def test_near_duplicates_are_one_row_with_a_count(web_engine, sample) -> None:
    inbox = page(web_engine)
    assert (inbox.groups_total, inbox.messages_total) == (5, 7)
    heating = next(r for r in inbox.rows if "暖气" in r.text)
    assert heating.count == 3
    assert heating.text == "5号楼 暖气不热"  # the newest stands for the group
    assert (heating.min_confidence, heating.max_confidence) == (0.35, 0.75)


def test_sorting(web_engine, sample) -> None:
    # lowest confidence: the group's lowest
    assert texts(web_engine) == [
        "5号楼 暖气不热",  # 0.35
        "今天天气怎么样",  # 0.45
        "狗屎没人管",  # 0.60
        "楼上装修太吵",
        "谢谢你们",
    ]
    # smallest margin between the top two intents
    assert texts(web_engine, sort="margin")[:3] == [
        "今天天气怎么样",
        "5号楼 暖气不热",
        "狗屎没人管",
    ]
    assert texts(web_engine, sort="newest")[0] == "狗屎没人管"
    assert texts(web_engine, sort="count")[0] == "5号楼 暖气不热"


def test_filters(web_engine, sample) -> None:
    assert texts(web_engine, intent="report_noise") == ["楼上装修太吵"]
    # the newest message within the filter stands for the group
    assert texts(web_engine, min="50", max="70") == ["2号楼暖气不热", "狗屎没人管"]
    assert page(web_engine, min="50", max="70").messages_total == 2  # only 0.55 and 0.60
    assert texts(web_engine, fallback="1") == ["今天天气怎么样"]
    assert texts(web_engine, q="装修") == ["楼上装修太吵"]
    assert texts(web_engine, q="%") == []  # LIKE wildcards are literal
    assert texts(web_engine, pair="report_pet") == ["狗屎没人管"]  # the runner-up
    assert set(texts(web_engine, intent="nope")) == set(texts(web_engine))  # unknown: ignored

    today = datetime.now(ZoneInfo(TZ)).date()
    assert len(texts(web_engine, **{"from": str(today - timedelta(days=1))})) == 5
    assert texts(web_engine, to=str(today - timedelta(days=2))) == []


def test_filter_by_grid_and_workers_changes(web_engine, tracker: TrackerLog, copy_log) -> None:
    now = utcnow()
    tracker.user("下水道堵了", "report_facility", 0.8, at=now.timestamp() - 300)
    tracker.user("楼道里全是杂物", "report_facility", 0.7, at=now.timestamp() - 200, sender="oY")
    number = add_ticket(
        web_engine,
        "和平新村3号楼2单元501",
        "FACILITY",
        original_text="下水道堵了",
        now=now - timedelta(seconds=290),
    )
    add_ticket(
        web_engine,
        "裕园3号楼1单元202",
        "FACILITY",
        original_text="楼道里全是杂物",
        sender_id="oY",
        now=now - timedelta(seconds=190),
    )
    with session_scope(web_engine) as session:
        service.recategorise(session, number, "SANITATION", "worker:1:王芳")
    copy_log()
    assert texts(web_engine, grid="HPXC-01") == ["下水道堵了"]
    assert texts(web_engine, grid="YY-01") == ["楼道里全是杂物"]
    (row,) = page(web_engine, changed="1").rows
    assert row.text == "下水道堵了" and row.suggested_intent == "report_sanitation"
    (ticket,) = row.tickets
    assert ticket.number == number and ticket.change == "类别：公共设施→环境卫生"
    assert ticket.category == "环境卫生" and ticket.grid == "HPXC-01"
    # the suggestion counts as "related" for the pair filter
    assert texts(web_engine, intent="report_facility", pair="report_sanitation") == ["下水道堵了"]


def test_paging(web_engine, tracker: TrackerLog, copy_log) -> None:
    for i in range(7):
        tracker.user(f"问题{'甲乙丙丁戊己庚'[i]}", "greet", 0.1 * (i + 1))
    copy_log()
    first = page(web_engine, size="3")
    assert first.pages == 3 and len(first.rows) == 3 and first.groups_total == 7
    last = page(web_engine, size="3", page="3")
    assert len(last.rows) == 1
    beyond = page(web_engine, size="3", page="9")
    assert beyond.rows == [] and beyond.groups_total == 7  # totals without rows
    seen = [r.text for p in (1, 2, 3) for r in page(web_engine, size="3", page=str(p)).rows]
    assert len(set(seen)) == 7


def test_query_round_trips_through_url_parameters() -> None:
    params = {
        "sort": "margin",
        "status": "all",
        "intent": "report_pet",
        "pair": "report_noise",
        "fallback": "1",
        "changed": "1",
        "min": "10",
        "max": "90.5",
        "from": "2026-01-02",
        "to": "2026-02-03",
        "grid": "HPXC-01",
        "q": "狗",
        "page": "4",
    }
    query = InboxQuery.from_params(params)
    assert InboxQuery.from_params(query.params()) == query
    assert query.params() == params
    junk = InboxQuery.from_params({"sort": "x", "page": "-3", "min": "abc", "from": "yesterday"})
    assert junk == InboxQuery()


def test_decisions_take_groups_out_of_the_inbox(web_engine, sample, tracker, copy_log) -> None:
    result = act(web_engine, ["2号楼暖气不热"], "confirm")
    assert (result.groups, result.messages, result.skipped) == (1, 3, 0)
    act(web_engine, ["楼上装修太吵"], "relabel", "dispute_neighbour")
    act(web_engine, ["今天天气怎么样"], "out_of_scope")
    act(web_engine, ["谢谢你们"], "dismiss")
    assert texts(web_engine) == ["狗屎没人管"]
    assert page(web_engine, status="reviewed").messages_total == 6
    with session_scope(web_engine, readonly=True) as session:
        decided = {
            d.text: (d.action, d.intent, d.predicted_intent, d.messages, d.decided_by)
            for d in session.execute(select(ReviewDecision)).scalars()
        }
    assert decided["5号楼 暖气不热"] == ("confirm", "report_heating", "report_heating", 3, ADMIN)
    assert decided["楼上装修太吵"][:3] == ("relabel", "dispute_neighbour", "report_noise")
    assert decided["今天天气怎么样"][:2] == ("out_of_scope", "out_of_scope")
    assert decided["谢谢你们"][:2] == ("dismiss", None)

    # a later message of a reviewed group is covered by its decision
    tracker.user("7号楼暖气不热", "report_heating", 0.3, sender="oZ")
    assert copy_log().covered == 1
    assert texts(web_engine) == ["狗屎没人管"]

    # undo puts the group back; deciding again replaces the verdict
    with session_scope(web_engine) as session:
        assert undo(session, [text_hash("2号楼暖气不热")]) == 1
    assert page(web_engine).rows[0].count == 4
    act(web_engine, ["2号楼暖气不热"], "relabel", "report_facility")
    act(web_engine, ["2号楼暖气不热"], "relabel", "report_heating")
    with session_scope(web_engine, readonly=True) as session:
        (heating,) = session.execute(
            select(ReviewDecision).where(ReviewDecision.norm_hash == text_hash("2号楼暖气不热"))
        ).scalars()
        assert (heating.action, heating.intent, heating.messages) == (
            "relabel",
            "report_heating",
            4,
        )


def test_suggested_label_and_refusals(web_engine, tracker: TrackerLog, copy_log) -> None:
    now = utcnow()
    tracker.user("楼下的狗天天叫", "report_noise", 0.6, at=now.timestamp() - 100)
    tracker.user("你好", "greet", 0.99, at=now.timestamp() - 50)
    number = add_ticket(
        web_engine,
        "和平新村3号楼2单元501",
        "NOISE",
        original_text="楼下的狗天天叫",
        now=now - timedelta(seconds=90),
    )
    with session_scope(web_engine) as session:
        service.recategorise(session, number, "PETS", "worker:1:王芳")
    copy_log()
    # a bulk "take the suggestion": groups without one are left alone
    result = act(web_engine, ["楼下的狗天天叫", "你好"], "suggested")
    assert (result.groups, result.skipped) == (1, 1)
    with session_scope(web_engine, readonly=True) as session:
        (decision,) = session.execute(select(ReviewDecision)).scalars()
    assert (decision.action, decision.intent) == ("relabel", "report_pet")
    assert texts(web_engine) == ["你好"]

    with pytest.raises(DecisionRefused):
        act(web_engine, ["你好"], "relabel", "not_an_intent")
    with pytest.raises(DecisionRefused):
        act(web_engine, ["你好"], "delete")
    assert act(web_engine, [], "confirm").groups == 0
    with session_scope(web_engine) as session:  # hashes that are not ours are ignored
        assert decide(session, ["x' OR 1=1 --", "0" * 16], "confirm", ADMIN).groups == 0


def _groups_table(engine) -> list[tuple]:
    with session_scope(engine, readonly=True) as session:
        return [
            tuple(row)
            for row in session.execute(
                select(ReviewGroup.__table__).order_by(ReviewGroup.norm_hash)
            )
        ]


def test_the_unfiltered_inbox_matches_the_aggregate(
    web_engine, sample, tracker: TrackerLog, copy_log
) -> None:
    """The unfiltered inbox reads review_groups; any filter aggregates the messages.
    Both agree after copies, decisions, undo and workers' changes."""
    now = utcnow()
    tracker.user("楼下的狗天天叫", "report_noise", 0.6, at=now.timestamp() - 100)
    number = add_ticket(
        web_engine,
        "和平新村3号楼2单元501",
        "NOISE",
        original_text="楼下的狗天天叫",
        now=now - timedelta(seconds=90),
    )
    copy_log()
    act(web_engine, ["楼上装修太吵"], "confirm")
    act(web_engine, ["2号楼暖气不热", "谢谢你们"], "dismiss")
    with session_scope(web_engine) as session:
        undo(session, [text_hash("谢谢你们")])
        service.recategorise(session, number, "PETS", "worker:1:王芳")
    copy_log()

    def figures(inbox) -> list[tuple]:
        return [
            (r.norm_hash, r.count, r.min_confidence, r.margin, r.newest, r.suggested_intent)
            for r in inbox.rows
        ]

    for sort in SORTS:
        fast = page(web_engine, sort=sort)
        slow = page(web_engine, sort=sort, min="0")  # a filter that keeps everything
        assert figures(fast) == figures(slow), sort
        assert (fast.groups_total, fast.messages_total) == (slow.groups_total, slow.messages_total)
    assert page(web_engine, sort="count").rows[0].suggested_intent is None
    assert any(r.suggested_intent == "report_pet" for r in page(web_engine).rows)

    kept = _groups_table(web_engine)
    with session_scope(web_engine) as session:
        assert rebuild_groups(session) == len(kept)
    assert _groups_table(web_engine) == kept
