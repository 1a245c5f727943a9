"""Property tests: rendered addresses round-trip; arbitrary text never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.routing.address import AddressParser, ParsedAddress

PARSER = AddressParser(
    {"和平新村社区": ["和平新村", "和平新村小区"], "裕园社区": ["裕园", "裕园小区"]}
)
DIGITS = "零一二三四五六七八九"
FULL_WIDTH = str.maketrans("0123456789-#", "０１２３４５６７８９－＃")


def chinese(n: int) -> str:
    """Standard Chinese numeral for 1..999 (十二, 二十三, 一百零五)."""
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    out = ""
    if hundreds:
        out += DIGITS[hundreds] + "百"
        if tens == 0 and ones:
            return out + "零" + DIGITS[ones]
    if tens:
        out += ("" if tens == 1 and not hundreds else DIGITS[tens]) + "十"
    if ones:
        out += DIGITS[ones]
    return out


def digit_by_digit(s: str) -> str:
    return "".join(DIGITS[int(c)] for c in s)


buildings = st.integers(min_value=1, max_value=299)
units = st.one_of(st.integers(min_value=1, max_value=9).map(str), st.sampled_from("东西中"))
rooms = st.builds(
    lambda floor, door: f"{floor}{door:02d}",
    st.integers(min_value=1, max_value=33),
    st.integers(min_value=1, max_value=4),
)
communities = st.sampled_from(
    [
        ("和平新村", "和平新村社区"),
        ("和平新村小区", "和平新村社区"),
        ("和平新村社区", "和平新村社区"),
        ("裕园", "裕园社区"),
        ("裕园小区", "裕园社区"),
        ("和平心村", "和平新村社区"),  # typo
        ("和平心村小区", "和平新村社区"),
    ]
)
prefixes = st.sampled_from(["", "俺家住", "我住在", "你好，", "地址："])
suffixes = st.sampled_from(["", " 暖气不热", "，楼道灯坏了", "。谢谢", " 狗一直叫"])


@st.composite
def rendered(draw):
    """An address in a random resident style, and what it means."""
    building, unit, room = draw(buildings), draw(units), draw(rooms)
    written, official = draw(communities)
    style = draw(st.sampled_from(["parts", "dashed"])) if unit.isdigit() else "parts"
    if style == "dashed":
        text = f"{building}-{unit}-{room}"
    else:
        b = draw(
            st.sampled_from(
                [
                    f"{building}号楼",
                    f"{building}号",
                    f"{building}栋",
                    f"{building}幢",
                    f"{building}#",
                    f"{chinese(building)}号楼",
                ]
            )
        )
        u = f"{chinese(int(unit)) if unit.isdigit() and draw(st.booleans()) else unit}单元"
        r = draw(st.sampled_from([room, f"{room}室", digit_by_digit(room)]))
        sep = draw(st.sampled_from(["", " "]))
        text = sep.join([b, u, r])
    if draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    text = draw(prefixes) + written + draw(st.sampled_from(["", " "])) + text + draw(suffixes)
    return text, ParsedAddress(None, building, unit, room, official)


@settings(max_examples=400, deadline=None)
@given(rendered())
def test_rendered_addresses_round_trip(case) -> None:
    text, expected = case
    got = PARSER.parse(text)
    assert (got.community, got.building, got.unit, got.room) == (
        expected.community,
        expected.building,
        expected.unit,
        expected.room,
    ), text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    got = PARSER.parse(text)
    assert got.building is None or 0 < got.building < 10000


ADDRESS_CHARS = "0123456789０１２３４５６７８９-－#＃ 号楼栋幢单元室东西中"
ADDRESS_CHARS += "零一二三四五六七八九十百两和平新村裕园小区社区"
address_alphabet = st.sampled_from(list(ADDRESS_CHARS))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=address_alphabet, max_size=60))
def test_address_like_noise_never_raises(text: str) -> None:
    got = PARSER.parse(text)
    if got.room is not None:
        assert got.room.isdigit()
    if got.unit is not None:
        assert got.unit.isdigit() or got.unit in "东西中南北"
