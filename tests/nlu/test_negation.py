"""A matter named only to be denied is left out of classification."""

from __future__ import annotations

import pytest

from bot.nlu.negation import drop_denied_matter


@pytest.mark.parametrize(
    ("text", "classified"),
    [
        ("不是狗叫 是楼上装修", "是楼上装修"),
        ("不是狗叫，是楼上装修", "是楼上装修"),
        ("俺说的不是停车的事 是抬杆一直响", "是抬杆一直响"),
        ("不光是开证明的事 俺哥不同意分房", "俺哥不同意分房"),
        ("燃气没事 是暖气不热", "是暖气不热"),
    ],
)
def test_the_denied_first_clause_is_dropped(text, classified):
    assert drop_denied_matter(text) == classified


@pytest.mark.parametrize(
    "text",
    [
        "不是",
        "不是这个",
        "不是 俺搬家了",  # an answer: the first clause denies nothing named
        "不对 是8号楼",
        "狗叫声吵得俺没法睡 不是装修是狗",  # the denial is not first
        "不是狗叫 是",  # nothing left worth classifying
        "暖气不热",
    ],
)
def test_other_messages_are_left_alone(text):
    assert drop_denied_matter(text) == text
