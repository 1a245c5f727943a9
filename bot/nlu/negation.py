"""A matter the resident names only to deny it: "不是狗叫 是楼上装修".

A bag of words sees 狗 and 装修 alike and may well answer "pet". Residents who
correct themselves put the denied matter first and what they mean after it,
so for classification the denied first clause is dropped: "不是狗叫 是楼上装修"
is classified as "是楼上装修", "燃气没事 是暖气不热" as "是暖气不热". The
ticket keeps the resident's own words (the original text).

Only a first clause of its own (ended by a space or punctuation) that denies
something and is followed by more is dropped; a bare "不是" or "不是这个" (an
answer to a yes/no question) is left alone.
"""

from __future__ import annotations

import re

# 不是狗叫 / 俺说的不是停车的事 / 不光是开证明的事 / 并不是要补贴, then a break
_DENIED_FIRST = re.compile(
    r"^(?:俺|我|俺们|我们|这|俺说的|我说的|俺要说的|我要说的)?"
    r"(?:不是|不光是|不只是|并不是|倒不是)[^\s,，。.!！?？;；]{1,14}[\s,，。.!！?？;；]+"
)
# 燃气没事 / 管子没坏 / 狗没事, then a break and "(就)是 …"
_FINE_FIRST = re.compile(
    r"^[^\s,，。.!！?？;；]{1,8}(?:没事|没坏|没毛病|没问题|挺好|倒还好)[\s,，。.!！?？;；]+(?=就?是)"
)
MIN_REST_CHARS = 3


def drop_denied_matter(text: str) -> str:
    """`text` without a leading clause that only denies a matter."""
    for pattern in (_DENIED_FIRST, _FINE_FIRST):
        match = pattern.match(text)
        if match is None:
            continue
        rest = text[match.end() :].strip()
        if len(rest) >= MIN_REST_CHARS:
            return rest
    return text
