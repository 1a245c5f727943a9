"""Reading a resident's answer to a yes/no question the assistant just asked.

The stand-alone intent classifier decides between 28 intents with no idea what was
asked, so short answers are where it is weakest: "中", "管", "👌" or "行吧" may come
out as anything. When a question is pending, the answer is read here instead,
from the words residents use (data/yes_no.yml), with the question's own words
added ("撤吧" withdraws, "搬家了" is a no to "还是…吗？"). The classifier's intent
is only a last resort for wordings the lexicon does not know.

The reading is deliberately lopsided: any no wins over a yes, and a yes needs a
yes word, because a wrong yes submits, withdraws or closes a ticket the resident
did not want, while a wrong no or an unclear answer only asks again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

import yaml

from bot.nlu.normalise import normalise
from bot.settings import PROJECT_ROOT

LEXICON_FILE = PROJECT_ROOT / "data" / "yes_no.yml"

# Question kinds with words of their own in data/yes_no.yml.
CONFIRM_REPORT = "confirm_report"
KNOWN_ADDRESS = "known_address"
CANCEL_TICKET = "cancel_ticket"
RATING = "rating"
RETRY_SUBMIT = "retry_submit"
ERASE_OPEN_TICKETS = "erase_open_tickets"  # withdraw the open ones before deleting?
ERASE_DATA = "erase_data"  # delete my data: confirmed?

# The classifier's answer is taken only when it is this sure (and the lexicon
# found nothing): a yes must be surer than a no, which only asks again later.
CLASSIFIER_YES_CONFIDENCE = 0.8
CLASSIFIER_NO_CONFIDENCE = 0.6

# Parts of a message: split at punctuation and spaces.
_SEPARATORS = re.compile(r"[\s,，.。!！?？、~～…;；:：/\\|()（）\[\]【】\"'“”‘’\-—_=+*#@&]+")


class Answer(str, Enum):
    YES = "yes"
    NO = "no"
    UNCLEAR = "unclear"


@dataclass(frozen=True)
class Lexicon:
    """Answer words; `question_yes` / `question_no` hold each question kind's own."""

    yes: frozenset[str]
    no: frozenset[str]
    no_anywhere: frozenset[str]
    unsure: frozenset[str]
    not_answer: frozenset[str]
    filler: frozenset[str]
    question_yes: dict[str, frozenset[str]]
    question_no: dict[str, frozenset[str]]

    def vocabulary(self, question: str | None) -> dict[str, str]:
        """Every word of this question's vocabulary -> yes | no | unsure | other | filler."""
        vocabulary: dict[str, str] = {}
        # later kinds overwrite earlier ones: a question's own words come last
        for kind, words in (
            ("filler", self.filler),
            ("yes", self.yes),
            ("no", self.no),
            ("unsure", self.unsure),
            ("other", self.not_answer),
            ("yes", self.question_yes.get(question or "", frozenset())),
            ("no", self.question_no.get(question or "", frozenset())),
        ):
            for word in words:
                vocabulary[_fold(word)] = kind
        return vocabulary

    def no_anywhere_words(self, question: str | None) -> frozenset[str]:
        words = self.no_anywhere | self.question_no.get(question or "", frozenset())
        return frozenset(_fold(w) for w in words)

    @property
    def questions(self) -> frozenset[str]:
        return frozenset(self.question_yes) | frozenset(self.question_no)


def _fold(text: str) -> str:
    # gesture emoji become words there (👌 -> ok), so the lexicon's emoji match too
    return normalise(text, max_chars=None)


def _words(values: Iterable[object] | None) -> frozenset[str]:
    return frozenset(str(v).strip() for v in values or () if str(v).strip())


def load_lexicon(path: Path = LEXICON_FILE) -> Lexicon:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    questions = data.get("questions") or {}
    return Lexicon(
        yes=_words(data.get("yes_words")),
        no=_words(data.get("no_words")),
        no_anywhere=_words(data.get("no_anywhere_words")),
        unsure=_words(data.get("unsure_words")),
        not_answer=_words(data.get("not_answer_words")),
        filler=_words(data.get("filler_words")),
        question_yes={kind: _words((q or {}).get("yes_words")) for kind, q in questions.items()},
        question_no={kind: _words((q or {}).get("no_words")) for kind, q in questions.items()},
    )


@lru_cache(maxsize=1)
def get_lexicon() -> Lexicon:
    return load_lexicon()


@dataclass(frozen=True)
class _Vocabulary:
    words: dict[str, str]
    longest: int
    no_anywhere: frozenset[str]
    unsure: frozenset[str]


@lru_cache(maxsize=32)
def _vocabulary(question: str | None) -> _Vocabulary:
    lexicon = get_lexicon()
    words = lexicon.vocabulary(question)
    return _Vocabulary(
        words=words,
        longest=max(map(len, words), default=1),
        no_anywhere=lexicon.no_anywhere_words(question),
        unsure=frozenset(w for w, kind in words.items() if kind == "unsure"),
    )


def _tokenise(part: str, vocabulary: _Vocabulary) -> list[tuple[str, str]] | None:
    """The part's words and their kinds (longest match first), or None when the
    part holds anything that is not an answer word."""
    words: list[tuple[str, str]] = []
    i = 0
    while i < len(part):
        for size in range(min(vocabulary.longest, len(part) - i), 0, -1):
            kind = vocabulary.words.get(part[i : i + size])
            if kind is not None:
                if kind == "other":
                    return None
                words.append((part[i : i + size], kind))
                i += size
                break
        else:
            return None
    return words


def _leading(part: str, vocabulary: _Vocabulary) -> str | None:
    """The kind of a word of two or more characters that starts a longer part.

    "不对是8号楼" starts with a no; one character is not enough ("不热" is no
    answer, "中午" no yes, "好冷" neither).
    """
    for size in range(min(vocabulary.longest, len(part) - 1), 1, -1):
        kind = vocabulary.words.get(part[:size])
        if kind is not None:
            return kind if kind in ("yes", "no", "unsure") else None
    return None


def _has_no_anywhere(part: str, vocabulary: _Vocabulary) -> bool:
    for word in vocabulary.unsure:  # "对不对" is a question, not "不对"
        part = part.replace(word, " ")
    return any(word in part for word in vocabulary.no_anywhere)


# A yes followed by more than this many characters of other words is no yes:
# "好的 谢谢网格员" is, "好了好了 暖气热乎了 明天还得请假 ..." is about something else.
# Followed by other words at all, a yes of one character is none either: "嗯 这个
# 吧 咋说呢" hesitates.
MAX_CONTENT_AFTER_YES = 12


def read_answer(text: str, question: str | None = None) -> Answer:
    """What the words of `text` say to a yes/no question of kind `question`.

    YES or NO only when the resident used answer words; UNCLEAR otherwise
    (including a message about something else entirely).
    """
    vocabulary = _vocabulary(question)
    parts = [p for p in _SEPARATORS.split(_fold(text or "")) if p]
    said: set[str] = set()
    first_yes = ""  # the longest yes word of the first part
    content_chars = 0
    for index, part in enumerate(parts):
        words = _tokenise(part, vocabulary)
        if words is None:
            content_chars += len(part)
            leading = _leading(part, vocabulary) if index == 0 else None
            words = [("..", leading)] if leading else []
            if _has_no_anywhere(part, vocabulary):
                words.append(("", "no"))
        said.update(kind for _, kind in words)
        if index == 0:
            first_yes = max((w for w, kind in words if kind == "yes"), key=len, default="")
    if "no" in said:
        return Answer.NO
    if "unsure" in said or not first_yes:
        return Answer.UNCLEAR
    if content_chars == 0 or (len(first_yes) > 1 and content_chars <= MAX_CONTENT_AFTER_YES):
        return Answer.YES
    return Answer.UNCLEAR


def interpret(
    text: str,
    question: str | None = None,
    intent: str | None = None,
    confidence: float | None = None,
) -> Answer:
    """The resident's answer to a pending yes/no question of kind `question`.

    The words decide (`read_answer`); only when they say nothing is the stand-alone
    classifier's affirm / deny taken, and only when it is sure.
    """
    answer = read_answer(text, question)
    if answer is not Answer.UNCLEAR or _mentions(text, _vocabulary(question).unsure):
        return answer
    sure = confidence or 0.0
    if intent == "affirm" and sure >= CLASSIFIER_YES_CONFIDENCE:
        return Answer.YES
    if intent == "deny" and sure >= CLASSIFIER_NO_CONFIDENCE:
        return Answer.NO
    return Answer.UNCLEAR


def _mentions(text: str, words: frozenset[str]) -> bool:
    folded = _fold(text or "")
    return any(word in folded for word in words)


def is_bare_answer(text: str, question: str | None = None) -> bool:
    """True when the message is nothing but a yes or a no ("中", "👌", "不对 不对").

    Such a message answers whatever was asked, whatever the classifier thinks.
    """
    vocabulary = _vocabulary(question)
    kinds: set[str] = set()
    for part in _SEPARATORS.split(_fold(text or "")):
        if not part:
            continue
        words = _tokenise(part, vocabulary)
        if words is None:
            return False
        kinds.update(kind for _, kind in words)
    return bool(kinds & {"yes", "no"}) and "unsure" not in kinds
