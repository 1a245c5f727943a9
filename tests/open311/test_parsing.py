"""Pure parts of bot.open311: dates, JSON text."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.open311.answers import dumps
from bot.open311.mapping import w3c
from bot.open311.parsing import parse_query, parse_w3c

ZONE = ZoneInfo("Asia/Shanghai")
UTC10 = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)  # 10:00 in Jinan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T02:00:00Z", UTC10),
        ("2026-11-27T10:00:00+08:00", UTC10),
        ("2026-11-27T10:00+08:00", UTC10),
        ("2026-11-27T10:00:00 08:00", UTC10),
        ("2026-11-27T01:00:00-01:00", UTC10),
        ("2026-11-27T02:00:00.5Z", UTC10 + timedelta(milliseconds=500)),
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=ZONE)),
    ],
)
def test_w3c_dates(text: str, expected: datetime) -> None:
    assert parse_w3c(text, ZONE) == expected


def test_date_only_end_is_the_end_of_the_day() -> None:
    end = parse_w3c("2026-11-27", ZONE, end_of_day=True)
    assert end == datetime(2026, 11, 28, tzinfo=ZONE) - timedelta(microseconds=1)


@pytest.mark.parametrize(
    "text",
    ["", "2026-11-27T10:00:00", "2026/11/27", "2026-11-27T25:00:00Z", "2026-02-30", "now"],
)
def test_bad_dates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_w3c(text, ZONE)


def test_w3c_output_is_local_with_offset() -> None:
    assert w3c(UTC10, ZONE) == "2026-11-27T10:00:00+08:00"
    assert w3c(None, ZONE) is None


@given(st.recursive(st.text() | st.integers() | st.none(), lambda c: st.lists(c, max_size=3)))
def test_json_text_round_trips_and_carries_no_markup(value: object) -> None:
    text = dumps(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value


def test_default_window_is_the_last_90_days() -> None:
    query = parse_query([], now=UTC10, zone=ZONE)
    assert (query.start, query.end) == (UTC10 - timedelta(days=90), None)
    assert (query.page, query.page_size) == (1, 1000)
