"""bot.consultations.answers: which option a chat answer names."""

from __future__ import annotations

import pytest

from bot.consultations.answers import option_from_text

OPTIONS = ["同意加装电梯", "不同意", "再商量"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("投票1", 0),
        ("投票 2", 1),
        ("我选方案三", 2),
        ("选第二个", 1),
        ("我投2号", 1),
        ("二", 1),
        ("３", 2),  # full-width digit
        ("我同意加装电梯", 0),
        ("不同意", 1),  # not read as 同意加装电梯
        ("再商量吧", 2),
    ],
)
def test_clear_answers(text: str, expected: int) -> None:
    assert option_from_text(text, OPTIONS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "投票",
        "我选1也选2",  # two options
        "投票5",  # no such option
        "投票0",
        "投12号",
        "一起商量一下",  # 一 and 商量 are words here... but 再商量 is not named
        "三号楼的电梯",
        "<script>alert(9)</script>",  # names no option that exists
    ],
)
def test_unclear_answers(text: str) -> None:
    assert option_from_text(text, OPTIONS) is None
