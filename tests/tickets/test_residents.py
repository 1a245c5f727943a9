"""Residents: the bound address and the last shared location."""

from __future__ import annotations

import pytest

from bot.tickets.service import bind_address, get_resident, set_location
from tests.helpers import NOW, located


def test_bind_address_creates_then_updates(demo_session) -> None:
    s = demo_session
    assert get_resident(s, "wx-1") is None
    r = bind_address(s, "wx-1", located(s, "和平新村3号楼2单元501"), channel="wechat", now=NOW)
    s.commit()
    assert (r.community.name, r.building, r.unit, r.room, r.grid.code) == (
        "和平新村社区",
        3,
        "2",
        "501",
        "HPXC-01",
    )
    assert r.channel == "wechat" and r.created_at is not None

    again = bind_address(s, "wx-1", located(s, "和平新村999号楼"))
    s.commit()
    assert again.id == r.id
    assert get_resident(s, "wx-1").building == 999


def test_bind_unknown_address_clears_the_grid(demo_session) -> None:
    s = demo_session
    bind_address(s, "wx-2", located(s, "和平新村3号楼"))
    r = bind_address(s, "wx-2", located(s, "和平新村999号楼"))
    s.commit()
    assert r.community.name == "和平新村社区" and r.grid is None


def test_set_location(demo_session) -> None:
    s = demo_session
    r = set_location(s, "wx-3", 36.661, 117.0285, channel="wechat", now=NOW)
    s.commit()
    assert (r.last_lat, r.last_lon, r.located_at) == (36.661, 117.0285, NOW)
    with pytest.raises(ValueError):
        set_location(s, "wx-3", 117.0285, 36.661)  # swapped
