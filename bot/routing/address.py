"""Addresses as residents type them -> community, building, unit, room.

Examples that parse (full-width digits too, and inside a longer message):

    和平新村3号楼2单元501          和平新村小区3栋二单元501室
    和平心村3幢东单元五零一 (typo)  十二号楼 / 二十三号楼 / 3# / 3号
    和平新村3-2-501               俺家住和平新村3号楼2单元501 暖气不热

Rules worth knowing:
- Text is NFKC-normalised first (full-width digits, ＃ and － become ASCII).
- The community is matched by official name or alias, with 小区/社区/院
  optional, and by near-miss (edit distance 1, 2 for long names) right
  before an address part or a 小区/社区 marker.
- "3楼" is a floor, not a building, and "11月3号" is a date: neither is read
  as a building. A room without a building never invents one.
- Building is an int; unit a string ("2", or "东"/"西"/"中"...); room a
  string of digits ("501", Chinese digit-by-digit rooms become digits).

All patterns are compiled once and the alias index is built once per parser,
so a parse takes well under a millisecond.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_TEXT = 1000  # longer messages: the address is at the start anyway

CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
CN_UNITS = {"十": 10, "百": 100}
_CN = "零〇一二两三四五六七八九十百"

COMMUNITY_SUFFIXES = ("社区", "小区", "居委会", "院")
# Words that often directly precede a community name ("俺家住和平新村").
_LEAD_INS = re.compile(r"^.*(?:住在|家住|住|在|是|于|到|的)")

_DASHES = str.maketrans({c: "-" for c in "‐‑‒–—―−﹣"})
_NUM_CHARS = rf"0-9{_CN}"

# Building: "3号楼", "3栋", "3幢", "3#", "十二号楼"; bare "3号" is weaker
# (not a date "11月3号", not "3号线/3号院/3号门"...).
_BUILDING_STRONG = re.compile(
    rf"(?<![{_NUM_CHARS}月])(?P<num>[0-9]{{1,4}}|[{_CN}]{{1,6}})\s*(?:号楼|栋楼?|幢楼?|#楼?)"
)
_BUILDING_WEAK = re.compile(
    rf"(?<![{_NUM_CHARS}月])(?P<num>[0-9]{{1,4}}|[{_CN}]{{1,6}})\s*号"
    r"(?![院线路街巷门口床房室机位车码牌段])"
)
_UNIT = re.compile(rf"(?<![{_NUM_CHARS}])(?P<num>[0-9]{{1,2}}|[{_CN}]{{1,3}}|[东西中南北])\s*单元")
_ROOM_EXPLICIT = re.compile(
    rf"(?<![{_NUM_CHARS}])(?P<num>[0-9]{{1,5}}|[{_CN}]{{1,6}})\s*(?:室|房间|号房)"
)
# A room without 室 right after the unit or building: 3-4 digits, not a
# quantity ("500米", "300元", "120平").
_ROOM_BARE = re.compile(
    r"[\s,，、:：的-]*"
    r"(?P<num>[0-9]{3,4}|[零〇一二三四五六七八九]{3,4}|[一二三四五六七八九]百[零〇一二三四五六七八九十]{0,3})"
    rf"(?![{_NUM_CHARS}]|\s*(?:号楼|栋|幢|#|单元|楼|层|米|元|块|个|天|年|月|日|点|分|人|辆|次|平|斤|岁|度))"
)
# "3-2-501": building-unit-room; not a date, phone number or decimal.
_DASHED = re.compile(
    r"(?<![0-9.:/-])(?P<b>[0-9]{1,3})\s*-\s*(?P<u>[0-9]{1,2})\s*-\s*(?P<r>[0-9]{3,4})(?![0-9.:/-])"
)
# "3号楼2-501": unit-room after a building.
_UNIT_ROOM_DASHED = re.compile(r"[\s,，、]*(?P<u>[0-9]{1,2})\s*-\s*(?P<r>[0-9]{3,4})(?![0-9.:/-])")
_COMMUNITY_MARKER = re.compile(r"小区|社区|新村|花园|家园|公寓|宿舍|院")
_HEURISTIC_COMMUNITY = re.compile(r"[\u4e00-\u9fff]{1,8}?(?:小区|社区|新村|花园|家园|公寓|宿舍)")
_CJK_TAIL = re.compile(r"[\u4e00-\u9fff]{2,8}$")


def normalise(text: str) -> str:
    """NFKC (full-width -> ASCII) and one kind of dash."""
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def cn_to_int(token: str) -> int | None:
    """'12' / '十二' / '二十三' / '一百零五' / '五零一' -> int; None if malformed."""
    if token.isascii():
        return int(token) if token.isdigit() else None
    if not any(c in CN_UNITS for c in token):
        digits = [CN_DIGITS.get(c) for c in token]
        if not digits or None in digits:
            return None
        return int("".join(str(d) for d in digits))
    total, current, last_unit = 0, None, 10**9
    for c in token:
        if c in CN_UNITS:
            unit = CN_UNITS[c]
            if unit >= last_unit or (current is None and unit == 100):
                return None
            total += (1 if current is None else current) * unit
            current, last_unit = None, unit
        elif c in ("零", "〇"):
            if current is not None:
                return None
        elif c in CN_DIGITS:
            if current is not None:
                return None
            current = CN_DIGITS[c]
        else:
            return None
    return total + (current or 0)


def _room_text(token: str) -> str | None:
    """Rooms keep their digits as written ('0501' stays), Chinese becomes digits."""
    if token.isascii():
        return token if token.isdigit() else None
    if any(c in CN_UNITS for c in token):
        value = cn_to_int(token)
        return str(value) if value else None
    digits = [CN_DIGITS.get(c) for c in token]
    if None in digits:
        return None
    return "".join(str(d) for d in digits)


def _unit_text(token: str) -> str | None:
    if token in "东西中南北":
        return token
    value = cn_to_int(token)
    return str(value) if value else None


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, giving up (returning limit + 1) past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class ParsedAddress:
    community_text: str | None  # as written (or a guess for an unknown community)
    building: int | None
    unit: str | None
    room: str | None
    community: str | None = None  # official name, when it is a known community
    fuzzy: bool = False  # community matched as a near miss

    @property
    def empty(self) -> bool:
        return not (self.community_text or self.building or self.unit or self.room)


@dataclass(frozen=True)
class _Parts:
    building: int | None = None
    unit: str | None = None
    room: str | None = None
    start: int | None = None  # where the first part begins (anchor for names)

    @property
    def empty(self) -> bool:
        return self.building is None and self.unit is None and self.room is None


def _stem(name: str) -> str:
    for suffix in COMMUNITY_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


class AddressParser:
    """Parser knowing the communities: {official name: [aliases]}."""

    def __init__(self, communities: Mapping[str, Iterable[str]] | None = None) -> None:
        variants: dict[str, str | None] = {}
        stems: dict[str, str | None] = {}
        for official, aliases in (communities or {}).items():
            for name in (official, *aliases):
                name = normalise(name).strip()
                if len(name) < 2:
                    continue
                stem = _stem(name)
                # A stem claimed by two communities is ambiguous: match neither.
                stems[stem] = official if stems.get(stem, official) == official else None
                for variant in (name, stem, *(stem + s for s in ("小区", "社区", "院"))):
                    previous = variants.get(variant, official)
                    variants[variant] = official if previous == official else None
        self._variants = {v: c for v, c in variants.items() if c is not None}
        ordered = sorted(self._variants, key=len, reverse=True)
        self._community_re = (
            re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        )
        # Near misses only for stems of 3+ characters: 2-character names
        # ("裕园") are one typo away from too much ordinary text.
        self._fuzzy = [
            (stem, official, frozenset(stem))
            for stem, official in stems.items()
            if official is not None and len(stem) >= 3
        ]

    # -- public -----------------------------------------------------------

    def parse(self, text: str) -> ParsedAddress:
        t = normalise(text or "")[:MAX_TEXT]
        match = self._community_re.search(t) if self._community_re else None
        if match:
            parts = self._parts(t, match.end())
            if parts.empty:
                parts = self._parts(t, 0)
            return ParsedAddress(
                match.group(0),
                parts.building,
                parts.unit,
                parts.room,
                self._variants[match.group(0)],
            )
        parts = self._parts(t, 0)
        near = self._near_miss(t, parts)
        if near:
            official, written, end = near
            after = self._parts(t, end)
            parts = parts if after.empty else after
            return ParsedAddress(written, parts.building, parts.unit, parts.room, official, True)
        return ParsedAddress(
            self._guess_community(t, parts), parts.building, parts.unit, parts.room
        )

    # -- parts ------------------------------------------------------------

    def _parts(self, t: str, start: int) -> _Parts:
        b = _BUILDING_STRONG.search(t, start) or self._weak_building(t, start)
        building = cn_to_int(b.group("num")) if b else None
        if building is not None and not 0 < building < 10000:
            building = None
        if building is None:
            b = None
        d = _DASHED.search(t, start)
        if d and (b is None or d.start() < b.start()):
            return _Parts(int(d.group("b")), str(int(d.group("u"))), d.group("r"), d.start())

        unit = room = None
        pos = b.end() if b else start
        if b:
            ur = _UNIT_ROOM_DASHED.match(t, b.end())
            if ur:
                return _Parts(building, str(int(ur.group("u"))), ur.group("r"), b.start())
        u = _UNIT.search(t, pos)
        if u:
            unit = _unit_text(u.group("num"))
            if unit is None:
                u = None
        r = _ROOM_EXPLICIT.search(t, pos) or (_ROOM_EXPLICIT.search(t, start) if b else None)
        if r:
            room = _room_text(r.group("num"))
        if room is None:
            bare = None
            if u:
                bare = _ROOM_BARE.match(t, u.end())
            elif b:
                bare = _ROOM_BARE.match(t, b.end())
            if bare:
                room = _room_text(bare.group("num"))
                r = bare
        starts = [m.start() for m in (b, u, r) if m is not None]
        return _Parts(building, unit, room, min(starts) if starts else None)

    @staticmethod
    def _weak_building(t: str, start: int) -> re.Match[str] | None:
        for m in _BUILDING_WEAK.finditer(t, start):
            # "2单元501号" is a room, not building 501.
            if not t[: m.start()].rstrip().endswith("单元"):
                return m
        return None

    # -- community --------------------------------------------------------

    def _near_miss(self, t: str, parts: _Parts) -> tuple[str, str, int] | None:
        """A known name written with a typo just before an address part or 小区."""
        if not self._fuzzy:
            return None
        anchors = [] if parts.start is None else [parts.start]
        anchors += [m.start() for m in _COMMUNITY_MARKER.finditer(t, 0, 200)][:4]
        if len(t) <= 12:
            anchors.append(len(t.rstrip()))
        best: tuple[int, int, str, str, int] | None = None
        for anchor in anchors:
            prefix = t[:anchor].rstrip(" ,，、的")
            tail = prefix[-12:]
            if len(tail) < 2:
                continue
            chars = set(tail)
            for stem, official, stem_chars in self._fuzzy:
                # Cheap filter before computing any distance.
                if len(stem_chars & chars) < len(stem_chars) - 1:
                    continue
                limit = 1 if len(stem) <= 5 else 2
                for length in (len(stem) - 1, len(stem), len(stem) + 1):
                    if length < 2 or length > len(prefix):
                        continue
                    window = prefix[-length:]
                    distance = edit_distance(window, stem, limit)
                    if distance <= limit:
                        # Lowest distance wins; then the longer name.
                        key = (distance, -len(stem))
                        if best is None or key < best[:2]:
                            best = (distance, -len(stem), official, window, anchor)
        if best is None:
            return None
        _, _, official, written, end = best
        # Skip a 小区/社区 written after the near-miss name.
        marker = re.match(r"(?:小区|社区|院)", t[end:])
        return official, written, end + (marker.end() if marker else 0)

    @staticmethod
    def _guess_community(t: str, parts: _Parts) -> str | None:
        """For an unknown community: what the resident seems to call it."""
        m = _HEURISTIC_COMMUNITY.search(t)
        guess = m.group(0) if m else None
        if guess is None and parts.start:
            tail = _CJK_TAIL.search(t[: parts.start].rstrip())
            guess = tail.group(0) if tail else None
        if guess:
            guess = _LEAD_INS.sub("", guess)
        return guess if guess and len(guess) >= 2 else None


_DEFAULT = AddressParser()


def parse_address(text: str, parser: AddressParser | None = None) -> ParsedAddress:
    """Parse with `parser` (knows the communities) or without any known names."""
    return (parser or _DEFAULT).parse(text)
