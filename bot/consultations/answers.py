"""Reading which option a resident chose out of what they wrote.

"1", "我选2", "投第二个", "方案三", "选项1", "赞成" (when an option is 赞成) ...
Only an unambiguous answer counts: two different options named, or none, is None.
"""

from __future__ import annotations

import re
import unicodedata

CHINESE_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8}
_DIGIT = "[1-9一二两三四五六七八]"
# a number standing for an option: after 第/方案/选项/选/投, a digit on its own, or the
# whole message ("二", "2号"); Chinese numerals elsewhere are ordinary words (一起, 三号楼)
_NUMBER = re.compile(
    rf"(?:第|方案|选项|选|投)\s*({_DIGIT})(?![0-9])"
    r"|(?<![0-9])([1-9])(?![0-9])"
    rf"|^\s*({_DIGIT})\s*[号个项]?\s*$"
)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip()


def option_from_text(text: str, options: list[str]) -> int | None:
    """The 0-based index of the option `text` names, None when unclear."""
    folded = _fold(text)
    if not folded:
        return None
    chosen: set[int] = set()
    # an option's own words, longest first (so "不同意" is not read as "同意")
    remaining = folded
    for index in sorted(range(len(options)), key=lambda i: -len(options[i])):
        words = _fold(options[index])
        if words and words in remaining:
            chosen.add(index)
            remaining = remaining.replace(words, " ")
    for match in _NUMBER.finditer(remaining):
        raw = match.group(1) or match.group(2) or match.group(3)
        number = int(raw) if raw.isdigit() else CHINESE_DIGITS[raw]
        if 1 <= number <= len(options):
            chosen.add(number - 1)
        else:
            return None  # names an option that does not exist
    return chosen.pop() if len(chosen) == 1 else None
