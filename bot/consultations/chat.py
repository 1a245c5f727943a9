"""What the assistant's consultation action asks of the domain core (one
transaction, plain values out; a locked or unreachable database is
bot.frontdesk.StoreUnavailable, as for every action)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError, OperationalError

from bot.consultations import notices, service
from bot.frontdesk import StoreUnavailable
from bot.store.db import session_scope

__all__ = ["ChatOutcome", "StoreUnavailable", "answer"]


@dataclass(frozen=True)
class ChatOutcome:
    """kind: recorded | already | none | unclear | closed (domain.yml's
    utter_consultation_<kind> says it)."""

    kind: str
    question: str = ""
    choice: str = ""
    options: str = ""


def answer(sender_id: str, text: str, now: datetime | None = None) -> ChatOutcome:
    """Record the resident's chat answer to their open consultation."""
    try:
        with session_scope() as session:
            try:
                consultation, vote = service.answer_from_text(session, sender_id, text, now)
            except service.NotEligible:
                return ChatOutcome("none")
            except service.ConsultationError as error:
                c = error.consultation
                kind = {
                    service.AlreadyAnswered: "already",
                    service.UnclearAnswer: "unclear",
                    service.Closed: "closed",
                }.get(type(error), "none")
                if c is None:
                    return ChatOutcome(kind)
                return ChatOutcome(kind, c.question, options=notices.options_lines(c))
            return ChatOutcome(
                "recorded", consultation.question, choice=consultation.options[vote.option]
            )
    except (OperationalError, DBAPIError) as error:
        raise StoreUnavailable(str(error.orig or error)) from error
