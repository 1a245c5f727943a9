"""Locating addresses and locations, and who handles which category."""

from __future__ import annotations

import pytest

from bot.routing.directory import apply_directory, parse_directory
from bot.routing.locator import Located, get_locator
from bot.store.models import Ticket
from bot.taxonomy import get_taxonomy
from tests.helpers import DEMO_FILE, located, new_ticket

HPXC_01_INSIDE = (36.6610, 117.0285)  # lat, lon
YY_03_INSIDE = (36.6610, 116.9600)
FAR_AWAY = (39.9042, 116.4074)  # Beijing


def cat(code: str):
    return get_taxonomy().by_code(code)


# -- locating (from the demo file, no database) -----------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "俺家住和平新村3号楼2单元501 暖气不热",
            ("和平新村社区", 3, "2", "501", "HPXC-01", "grid"),
        ),
        ("和平新村小区7栋", ("和平新村社区", 7, None, None, "HPXC-02", "grid")),
        ("和平心村二十三号楼", ("和平新村社区", 23, None, None, "HPXC-04", "grid")),
        ("裕园12号楼1单元1203", ("裕园社区", 12, "1", "1203", "YY-02", "grid")),
        ("裕园社区 十八号楼", ("裕园社区", 18, None, None, "YY-03", "grid")),
        ("和平新村999号楼", ("和平新村社区", 999, None, None, None, "community")),
        ("和平新村", ("和平新村社区", None, None, None, None, "community")),
        ("幸福里小区3号楼", (None, 3, None, None, None, None)),
        ("楼下的狗一直叫", (None, None, None, None, None, None)),
    ],
)
def test_locate_text(demo_locator, text, expected) -> None:
    got = demo_locator.locate_text(text)
    keys = ("community", "building", "unit", "room", "grid", "level")
    assert tuple(got.as_dict()[k] for k in keys) == expected


def test_locate_text_default_community(demo_locator) -> None:
    got = demo_locator.locate_text("3号楼2单元501", default_community="裕园")
    assert (got.community, got.grid) == ("裕园社区", "YY-01")
    # What the resident writes wins over the default.
    got = demo_locator.locate_text("和平新村9号楼", default_community="裕园")
    assert got.grid == "HPXC-02"


def test_locate_point(demo_locator) -> None:
    got = demo_locator.locate_point(*HPXC_01_INSIDE)
    assert (got.community, got.grid, got.level) == ("和平新村社区", "HPXC-01", "grid")
    assert demo_locator.locate_point(*YY_03_INSIDE).grid == "YY-03"
    nowhere = demo_locator.locate_point(*FAR_AWAY)
    assert nowhere.as_dict() == dict.fromkeys(
        ["community", "building", "unit", "room", "grid", "level"]
    )


def test_locate_parts(demo_locator) -> None:
    got = demo_locator.locate_parts("和平新村小区", 15, "东", "101")
    assert (got.community, got.grid, got.unit) == ("和平新村社区", "HPXC-03", "东")


# -- routing -------------------------------------------------------------------------


def test_grid_category_goes_to_the_grid_worker(demo_locator) -> None:
    where = demo_locator.locate_text("和平新村3号楼")
    route = demo_locator.route(cat("HEATING"), where)
    assert (route.level, route.community, route.grid) == ("grid", "和平新村社区", "HPXC-01")
    assert route.assignee_name == "王芳"
    assert "和平新村第一网格" in route.reason and "王芳" in route.reason


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        ("INHERITANCE", "人民调解委员会"),
        ("NEIGHBOUR_DISPUTE", "人民调解委员会"),
        ("PROPOSAL", "居民议事会"),
        ("CERTIFICATE", "和平新村社区居委会"),
        ("SUBSIDY", "和平新村社区居委会"),
        ("RELOCATION", "和平新村社区居委会"),
    ],
)
def test_community_category_goes_to_the_office_and_keeps_the_grid(
    demo_locator, code, phrase
) -> None:
    route = demo_locator.route(cat(code), demo_locator.locate_text("和平新村3号楼"))
    assert (route.level, route.community, route.grid) == ("community", "和平新村社区", "HPXC-01")
    assert route.assignee is None
    assert phrase in route.reason


def test_unknown_building_goes_to_the_community_office(demo_locator) -> None:
    route = demo_locator.route(cat("HEATING"), demo_locator.locate_text("和平新村999号楼"))
    assert (route.level, route.community, route.grid) == ("community", "和平新村社区", None)
    assert "999号楼" in route.reason and "居委会" in route.reason


def test_unknown_community_is_left_for_staff(demo_locator) -> None:
    route = demo_locator.route(cat("HEATING"), demo_locator.locate_text("幸福里3号楼"))
    assert (route.community, route.grid, route.assignee) == (None, None, None)
    assert "未能确定" in route.reason
    assert demo_locator.route(cat("PETS"), None).community is None


def test_location_routes_like_an_address(demo_locator) -> None:
    route = demo_locator.route(cat("PARKING"), demo_locator.locate_point(*YY_03_INSIDE))
    assert (route.level, route.grid, route.assignee_name) == ("grid", "YY-03", "孙敏")


# -- through the database ---------------------------------------------------------------


def test_tickets_are_routed_from_the_database(demo_session) -> None:
    s = demo_session
    grid_ticket = new_ticket(s, "a", location=located(s, "和平新村3号楼2单元501"))
    office_ticket = new_ticket(s, "b", location=located(s, "和平新村999号楼"))
    mediation = new_ticket(s, "c", category="INHERITANCE", location=located(s, "裕园5号楼"))
    nowhere = new_ticket(s, "d", location=located(s, "火星基地"))
    s.commit()

    assert grid_ticket.level == "grid" and grid_ticket.grid.code == "HPXC-01"
    assert grid_ticket.assignee.name == "王芳"
    assert (grid_ticket.building, grid_ticket.unit, grid_ticket.room) == (3, "2", "501")
    assert grid_ticket.address_text == "和平新村3号楼2单元501"
    assert [e.type for e in grid_ticket.events] == ["created", "assigned"]
    assert grid_ticket.events[1].data["grid"] == "HPXC-01"

    assert office_ticket.level == "community" and office_ticket.grid is None
    assert office_ticket.community.name == "和平新村社区" and office_ticket.assignee is None

    assert mediation.level == "community" and mediation.grid.code == "YY-01"
    assert "人民调解委员会" in mediation.routing_reason

    assert nowhere.community is None and nowhere.grid is None
    assert "未能确定" in nowhere.routing_reason


def test_point_ticket_keeps_the_coordinates(demo_session) -> None:
    s = demo_session
    where = get_locator(s).locate_point(*HPXC_01_INSIDE)
    ticket = new_ticket(s, location=where)
    s.commit()
    assert (ticket.lat, ticket.lon) == HPXC_01_INSIDE
    assert ticket.grid.code == "HPXC-01"


def test_locator_cache_follows_directory_changes(demo_session) -> None:
    s = demo_session
    assert get_locator(s).locate_text("和平新村3号楼").grid == "HPXC-01"
    text = DEMO_FILE.read_text(encoding="utf-8").replace('["1-6", "8"]', '["1-2", "8"]')
    apply_directory(s, parse_directory(text))
    s.commit()
    assert get_locator(s).locate_text("和平新村3号楼").level == "community"


def test_stale_location_does_not_break_routing(demo_session) -> None:
    """A Located holding an unknown grid code still routes (to the office)."""
    s = demo_session
    ticket = new_ticket(
        s, location=Located(community="和平新村社区", building=3, grid="GONE-1", level="grid")
    )
    s.commit()
    assert ticket.level == "community" and ticket.grid_id is None
    assert isinstance(ticket, Ticket)
