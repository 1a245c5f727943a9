"""The address parser: formats residents use, and what it must not invent."""

from __future__ import annotations

import time

import pytest

from bot.routing.address import AddressParser, cn_to_int, edit_distance, parse_address

PARSER = AddressParser(
    {"和平新村社区": ["和平新村", "和平新村小区"], "裕园社区": ["裕园", "裕园小区"]}
)


def parts(text: str) -> tuple:
    p = PARSER.parse(text)
    return (p.community, p.building, p.unit, p.room)


HP = "和平新村社区"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # buildings in every spelling
        ("和平新村3号楼", (HP, 3, None, None)),
        ("和平新村3号", (HP, 3, None, None)),
        ("和平新村3栋", (HP, 3, None, None)),
        ("和平新村3幢", (HP, 3, None, None)),
        ("和平新村3#", (HP, 3, None, None)),
        ("和平新村三号楼", (HP, 3, None, None)),
        ("和平新村十二号楼", (HP, 12, None, None)),
        ("和平新村二十三号楼", (HP, 23, None, None)),
        ("和平新村十号楼", (HP, 10, None, None)),
        ("和平新村一百零五号楼", (HP, 105, None, None)),
        ("和平新村两号楼", (HP, 2, None, None)),
        # units
        ("和平新村3号楼2单元", (HP, 3, "2", None)),
        ("和平新村3号楼二单元", (HP, 3, "2", None)),
        ("和平新村3号楼东单元", (HP, 3, "东", None)),
        ("和平新村3号楼西单元", (HP, 3, "西", None)),
        ("和平新村3号楼中单元", (HP, 3, "中", None)),
        # rooms
        ("和平新村3号楼2单元501", (HP, 3, "2", "501")),
        ("和平新村3号楼2单元501室", (HP, 3, "2", "501")),
        ("和平新村3号楼2单元五零一", (HP, 3, "2", "501")),
        ("和平新村3号楼2单元五零一室", (HP, 3, "2", "501")),
        ("和平新村3号楼501", (HP, 3, None, "501")),
        ("和平新村3号楼2单元1203", (HP, 3, "2", "1203")),
        # dashed and full-width
        ("和平新村3-2-501", (HP, 3, "2", "501")),
        ("和平新村3号楼2-501", (HP, 3, "2", "501")),
        ("和平新村３号楼２单元５０１", (HP, 3, "2", "501")),
        ("和平新村３－２－５０１", (HP, 3, "2", "501")),
        ("和平新村３＃", (HP, 3, None, None)),
        # community spelled in different ways
        ("和平新村小区3号楼", (HP, 3, None, None)),
        ("和平新村社区3号楼", (HP, 3, None, None)),
        ("和平新村院3号楼", (HP, 3, None, None)),
        ("和平心村3号楼", (HP, 3, None, None)),  # typo
        ("和平心村小区3号楼", (HP, 3, None, None)),
        ("和平新邨3号楼", (HP, 3, None, None)),
        ("和平新村", (HP, None, None, None)),
        ("和平心村", (HP, None, None, None)),
        ("裕园5号楼", ("裕园社区", 5, None, None)),
        ("裕园小区5号楼", ("裕园社区", 5, None, None)),
        # inside longer messages, with spaces
        ("俺家住和平新村3号楼2单元501 暖气不热", (HP, 3, "2", "501")),
        ("你好，我是和平新村 3 号楼 2 单元 501 的住户，楼道灯坏了三天了", (HP, 3, "2", "501")),
        ("楼道灯坏了，地址：和平新村 12栋东单元302室，麻烦尽快", (HP, 12, "东", "302")),
        ("3号楼2单元501，和平新村的", (HP, 3, "2", "501")),
        # unknown community: parts still parsed, no community invented
        ("幸福里小区3号楼2单元501", (None, 3, "2", "501")),
        # no building must not be invented
        ("501室", (None, None, None, "501")),
        ("和平新村501室", (HP, None, None, "501")),
        ("2单元501号", (None, None, "2", "501")),
        ("和平新村501", (HP, None, None, None)),
        # things that look numeric but are not addresses
        ("11月3号楼下很吵", (None, None, None, None)),
        ("3号楼5楼", (None, 3, None, None)),
        ("地铁3号线", (None, None, None, None)),
        ("电话13800000001", (None, None, None, None)),
        ("2024-11-27 停水", (None, None, None, None)),
        ("3号楼2单元500米外有垃圾", (None, 3, "2", None)),
        ("'; DROP TABLE tickets;--", (None, None, None, None)),
        ("", (None, None, None, None)),
    ],
)
def test_examples(text: str, expected: tuple) -> None:
    assert parts(text) == expected


def test_community_text_is_what_was_written() -> None:
    assert PARSER.parse("和平心村3号楼").community_text == "和平心村"
    assert PARSER.parse("和平心村3号楼").fuzzy is True
    assert PARSER.parse("和平新村小区3号楼").community_text == "和平新村小区"
    assert PARSER.parse("俺家住幸福里小区3号楼").community_text == "幸福里小区"
    assert PARSER.parse("暖气不热").community_text is None


def test_short_names_are_not_matched_fuzzily() -> None:
    # "裕园" is two characters: one typo away from too many words.
    assert PARSER.parse("玉园5号楼").community is None


def test_parser_without_known_communities() -> None:
    p = parse_address("和平新村3号楼2单元501")
    assert (p.community, p.building, p.unit, p.room) == (None, 3, "2", "501")
    assert p.community_text == "和平新村"


def test_ambiguous_alias_matches_neither() -> None:
    parser = AddressParser({"东苑社区": ["新苑"], "西苑社区": ["新苑"]})
    assert parser.parse("新苑3号楼").community is None
    assert parser.parse("东苑3号楼").community == "东苑社区"


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("3", 3),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("二十三", 23),
        ("一百", 100),
        ("一百零五", 105),
        ("一百一十", 110),
        ("五零一", 501),
        ("两", 2),
        ("十十", None),
        ("百", None),
        ("三三十", None),
    ],
)
def test_chinese_numerals(token: str, value: int | None) -> None:
    assert cn_to_int(token) == value


def test_edit_distance() -> None:
    assert edit_distance("和平新村", "和平心村", 1) == 1
    assert edit_distance("和平新村", "平新村", 1) == 1
    assert edit_distance("和平新村", "裕园", 1) == 2  # gave up past the limit


def test_fast_enough() -> None:
    texts = [
        "俺家住和平新村3号楼2单元501 暖气不热",
        "和平心村3幢东单元五零一",
        "楼下的狗一直叫，吵得睡不着觉",
        "和平新村３－２－５０１",
        "幸福里小区十二号楼二单元1203室门口有垃圾" * 3,
    ]
    rounds = 400
    start = time.perf_counter()
    for _ in range(rounds):
        for t in texts:
            PARSER.parse(t)
    per_parse = (time.perf_counter() - start) / (rounds * len(texts))
    assert per_parse < 0.001, f"{per_parse * 1e6:.0f} µs per address"
