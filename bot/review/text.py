"""How the review inbox compares resident messages with each other and with examples.

Two messages are near-duplicates when their *shape* is equal: the text as the
assistant reads it (bot.nlu.normalise: simplified, half-width, lower case),
with numbers (Arabic and Chinese numerals) folded to one mark and whitespace,
punctuation and emoji stripped. "3号楼暖气不热！" and "5号楼 暖气不热" share a
shape, so they are reviewed once. The same shape (and the bigram overlap test)
is what tests/test_training_data.py uses to keep the NLU data free of
near-duplicates, so exported examples pass it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from bot.nlu.normalise import normalise

_NUMERALS = re.compile(r"[0-9零一二三四五六七八九十百两]+")
_NOISE = re.compile(r"[\s\W_]+")
_WHITESPACE = re.compile(r"\s+")

# Rasa reads `[text](entity)`, `[text]{"entity": ...}` and `[text][{...}]` in an
# example as entity annotations (rasa.shared.nlu.training_data.entities_parser).
_RASA_ANNOTATION = re.compile(r"\[[^\]]+\]\s*[\(\{\[]")

# Long pastes make poor training examples (and the assistant reads only the
# first 500 characters anyway).
MAX_EXAMPLE_CHARS = 200

# Bigram overlap from which two examples of one intent count as near-duplicates
# (the threshold of tests/test_training_data.py, for shapes of 8+ characters).
NEAR_DUPLICATE_JACCARD = 0.85
NEAR_DUPLICATE_MIN_CHARS = 8


def shape(text: str) -> str:
    """Normalised text with numbers folded and punctuation/whitespace stripped."""
    folded = _NUMERALS.sub("#", normalise(text, max_chars=None))
    return _NOISE.sub("", folded)


def group_key(text: str) -> str:
    """The key of a message's near-duplicate group (never empty for a non-empty text)."""
    return shape(text) or normalise(text, max_chars=None) or text


def text_hash(text: str) -> str:
    """Stable 16-character hex hash of `group_key(text)` (64 bits: short in the
    inbox's index, and collisions are out of the question at this scale)."""
    return hashlib.blake2b(group_key(text).encode("utf-8"), digest_size=8).hexdigest()


def bigrams(value: str) -> frozenset[str]:
    return frozenset(value[i : i + 2] for i in range(len(value) - 1)) or frozenset({value})


def near_duplicate(
    shape_a: str, bigrams_a: frozenset[str], shape_b: str, bigrams_b: frozenset[str]
) -> bool:
    """The test of tests/test_training_data.py: equal shapes, or long and 85% alike."""
    if shape_a == shape_b:
        return True
    if min(len(shape_a), len(shape_b)) < NEAR_DUPLICATE_MIN_CHARS:
        return False
    return len(bigrams_a & bigrams_b) / len(bigrams_a | bigrams_b) >= NEAR_DUPLICATE_JACCARD


def clean_example(text: str) -> str:
    """One line of training data: control and format characters removed,
    whitespace (newlines too) collapsed to single spaces."""
    kept = "".join(
        " " if ch in "\r\n\t" else ch
        for ch in text
        if ch in "\r\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    return _WHITESPACE.sub(" ", kept).strip()


def example_problem(text: str) -> str | None:
    """Why `text` cannot be a training example as it is, or None when it can."""
    if not text:
        return "empty"
    if len(text) > MAX_EXAMPLE_CHARS:
        return "too_long"
    if _RASA_ANNOTATION.search(text):
        return "annotation_syntax"
    if text.startswith("/"):
        return "intent_trigger"
    return None
