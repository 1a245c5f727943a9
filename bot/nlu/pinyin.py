"""Toneless pinyin of a message: what it sounds like, not how it was typed.

Residents type on phone keyboards that offer every character with the right
sound, so a wrong character is usually a homophone of the right one: 暖器 for
暖气, 低宝 for 低保, 回签房 for 回迁房, 继成 for 继承. Some type pinyin itself
("nuanqi bu re", "dibao"). Spelled as toneless pinyin, all of these meet the
words the model was trained on. The readings come from pypinyin (maintained,
with phrase dictionaries for characters of several readings), and typed
pinyin is split into syllables only when all of it is pinyin ("nuanqi" -> nuan
qi; "ok" and "dog" stay what they are).
"""

from __future__ import annotations

import re
from functools import lru_cache

_LATIN_RUN = re.compile(r"[a-z]+")
_HAN = re.compile(r"[\u3400-\u9fff]")


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    """Every toneless syllable pypinyin knows (about 420), ü written as v."""
    from pypinyin.contrib.tone_convert import to_normal
    from pypinyin.pinyin_dict import pinyin_dict

    found = {
        to_normal(reading).replace("ü", "v")
        for readings in pinyin_dict.values()
        for reading in readings.split(",")
    }
    # single letters other than a/e/o would split English words into "syllables"
    return frozenset(s for s in found if s.isascii() and s.isalpha() and (len(s) > 1 or s in "aeo"))


def split_syllables(run: str) -> list[str] | None:
    """`run` (lower-case Latin letters) as pinyin syllables, fewest first; None if
    it is not all pinyin."""
    syllables = _syllables()
    longest = 6  # zhuang, chuang, shuang
    best: list[list[str] | None] = [None] * (len(run) + 1)
    best[0] = []
    for end in range(1, len(run) + 1):
        for start in range(max(0, end - longest), end):
            head = best[start]
            if head is None or run[start:end] not in syllables:
                continue
            candidate = head + [run[start:end]]
            current = best[end]
            if current is None or len(candidate) < len(current):
                best[end] = candidate
    return best[len(run)]


@lru_cache(maxsize=65536)
def token_pinyin(token: str) -> str:
    """A token's syllables, space-separated: "暖器" -> "nuan qi", "nuanqi" -> "nuan qi".

    Characters without a reading (digits, emoji, English that is not pinyin)
    are kept as they are, so the result is never empty for a non-empty token.
    """
    from pypinyin import Style, lazy_pinyin

    token = token.lower()
    if _HAN.search(token):
        parts = lazy_pinyin(token, style=Style.NORMAL, v_to_u=False, errors=lambda chars: [chars])
    else:
        parts = [token]
    words: list[str] = []
    for part in parts:
        for piece in part.split():
            if _LATIN_RUN.fullmatch(piece):
                words.extend(split_syllables(piece) or [piece])
            else:
                words.append(piece)
    return " ".join(words) or token


def to_pinyin(text: str) -> str:
    """The whole text as toneless syllables (for tests and inspection)."""
    return " ".join(token_pinyin(word) for word in text.split() if word)
