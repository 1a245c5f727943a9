"""Personal data in free text becomes placeholders where text leaves the service.

Used by the review inbox's export of training data (data/nlu/reviewed.yml
goes into version control), the tickets' CSV export (unless an admin asks
for the full one) and our processes' logs.

What is masked, written as residents write it (half- or full-width digits,
spaces or dashes between groups, a +86 in front):
- mobile numbers (1[3-9] and 9 more digits) and landlines (0 + area code + 7-8
  digits) -> 【电话】
- ID card numbers: 18 characters whose last is the ISO 7064 check digit
  (GB 11643) -> 【身份证号】
- bank card numbers: 16-19 digits passing the Luhn check -> 【银行卡号】
- room numbers: "2单元501", "501室", "1-2-501" -> the building and unit stay,
  the room becomes 【房号】

A placeholder, not a hole: the NLU still sees that a phone number was given.
Anything else (ticket numbers, dates, temperatures, money, 12345) is left
exactly as it was; the held-out figures in benchmarks/README.md show it.
"""

from __future__ import annotations

import logging
import re

PHONE = "【电话】"
ID_CARD = "【身份证号】"
BANK_CARD = "【银行卡号】"
ROOM = "【房号】"

_DIGIT = "[0-9０-９]"
_SEP = "[ \u3000\\-－‐—–]"  # space, ideographic space, dashes
# A run of digits that may be split by single separators, optionally ending in
# an ID card's X; never part of a longer run of digits or letters.
_CANDIDATE = re.compile(
    rf"(?<![0-9０-９A-Za-z])(?:[+＋]?(?:86|８６){_SEP}?)?{_DIGIT}(?:{_SEP}?{_DIGIT}){{6,21}}"
    rf"(?:{_SEP}?[xXＸ×])?(?![0-9０-９A-Za-z])"
)
_FULL_WIDTH = str.maketrans("０１２３４５６７８９ＸＸ×＋", "0123456789XXX+")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

_ROOM_PATTERNS = (
    # 2单元501 / 2单元 501室 / 2单元501号: keep the unit, mask the room
    re.compile(rf"(单元{_SEP}?)(?:{_DIGIT}{{3,4}})(?:室|号|房)?(?!{_DIGIT}|楼|层)"),
    # 1-2-501 (building-unit-room)
    re.compile(
        rf"(?<![0-9０-９])({_DIGIT}{{1,3}}{_SEP}{_DIGIT}{{1,2}}{_SEP})(?:{_DIGIT}{{3,4}})(?![0-9０-９])"
    ),
    # 501室 / 501房间 / 1201号房
    re.compile(rf"()(?<![0-9０-９])(?:{_DIGIT}{{3,4}})(?:室|房间|号房)"),
)


def id_card_valid(digits: str) -> bool:
    """An 18-character resident ID number with a correct check digit."""
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == digits[17].upper()


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _classify(raw: str) -> str | None:
    """The placeholder for one candidate run, or None to leave it be."""
    text = raw.translate(_FULL_WIDTH)
    plus86 = text.startswith("+")
    digits = re.sub(r"[^0-9X]", "", text.upper())
    if plus86 or (digits.startswith("86") and len(digits) == 13):
        rest = digits[2:]
        if re.fullmatch(r"1[3-9]\d{9}", rest):
            return PHONE
    if "X" in digits:
        return ID_CARD if id_card_valid(digits) else None
    if id_card_valid(digits):
        return ID_CARD
    if 16 <= len(digits) <= 19 and luhn_valid(digits):
        return BANK_CARD
    if re.fullmatch(r"1[3-9]\d{9}", digits):
        return PHONE
    if re.fullmatch(r"0[1-9]\d{8,10}", digits):
        return PHONE  # a landline with its area code (0531-88888888)
    return None


def _mask_numbers(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        raw = match.group(0)
        found = _classify(raw)
        if found is not None:
            return found
        # Two numbers side by side ("13800138000 13900139000"): each on its own.
        parts = re.split(r"([ \u3000]+)", raw)
        if len(parts) > 1:
            return "".join(
                part if i % 2 else (_classify(part) or part) for i, part in enumerate(parts)
            )
        return raw

    return _CANDIDATE.sub(replace, text)


def _mask_rooms(text: str) -> str:
    for pattern in _ROOM_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + ROOM, text)
    return text


def mask(text: str | None) -> str:
    """`text` with personal data replaced by placeholders ("" for None)."""
    if not text:
        return text or ""
    return _mask_rooms(_mask_numbers(text))


def has_personal_data(text: str | None) -> bool:
    return bool(text) and mask(text) != text


# -- logs ------------------------------------------------------------------------------


def install_log_masking() -> None:
    """Mask every log record this process writes (idempotent).

    A record factory (not a handler filter) so that handlers added later, by
    Rasa or aiohttp, get masked records too. The message is formatted once,
    masked, and the record carries the result.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "_masks_personal_data", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return record
        masked = mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        return record

    factory._masks_personal_data = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
