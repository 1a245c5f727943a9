"""Text normalisation applied before anything reads a resident's message.

Residents write traditional characters (暖氣不熱), full-width letters and digits
(３号楼), stretched characters (冷冷冷冷冷) and sometimes paste whole letters.
The NLU model is trained on simplified, half-width text; this module maps every
message to that form. The conversion table is OpenCC's (maintained, covers
phrases and regional variants), not a hand-written one.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Long pastes are cut for classification only (the ticket keeps the full text):
# intent is clear from the first few hundred characters and featurising
# thousands of tokens costs time on every turn.
MAX_NLU_CHARS = 500

_WHITESPACE = re.compile(r"\s+")
# Gesture emoji residents answer with, as the words they stand for (so "👌" is
# understood like "ok"); skin tones and variation selectors are dropped first.
_EMOJI_MODIFIERS = re.compile("[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")
GESTURE_WORDS = {
    "👌": " ok ",
    "👍": " 赞 ",
    "✅": " 对 ",
    "✔": " 对 ",
    "🆗": " ok ",
    "🙆": " 好 ",
    "❌": " 不 ",
    "✖": " 不 ",
    "🙅": " 不 ",
    "👎": " 不行 ",
    "🙏": " 谢谢 ",
    "👋": " 拜拜 ",
}
_GESTURES = re.compile("|".join(map(re.escape, GESTURE_WORDS)))
# Four or more of the same character carry no more meaning than three.
_STRETCHED = re.compile(r"(.)\1{3,}")


@lru_cache(maxsize=1)
def _converter():  # -> opencc.OpenCC, imported lazily: it loads dictionaries
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional to simplified Chinese (OpenCC t2s); other text is untouched."""
    return _converter().convert(text)


def normalise(text: str, max_chars: int | None = MAX_NLU_CHARS) -> str:
    """Return the canonical form of a resident's message for understanding.

    NFKC folds full-width forms to half-width, gesture emoji become the words
    they stand for (👌 -> ok), OpenCC converts traditional to simplified, Latin
    letters are lower-cased, whitespace is collapsed and stretched characters
    are shortened. Intent triggers (`/greet{...}`) sent
    by channels are returned unchanged.
    """
    if not text:
        return ""
    if text.startswith("/"):
        return text
    text = unicodedata.normalize("NFKC", text)
    text = _EMOJI_MODIFIERS.sub("", text)
    text = _GESTURES.sub(lambda m: GESTURE_WORDS[m.group(0)], text)
    text = to_simplified(text)
    text = text.lower()
    text = _WHITESPACE.sub(" ", text).strip()
    text = _STRETCHED.sub(r"\1\1\1", text)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars]
    return text
