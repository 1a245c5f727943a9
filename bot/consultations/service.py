"""Consultations: made from a proposal by community staff, answered by the residents
of a grid or building (one voice each), closed with a decision published back.

Plain functions on a Session, one transaction each by the caller. One voice per
resident is the database's unique constraint (consultation, voter): two answers
of one resident at the same moment cannot both count, whatever the timing, and
the results are a COUNT of those rows, so they are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.consultations import notices
from bot.consultations.answers import option_from_text
from bot.store.models import (
    Consultation,
    ConsultationVote,
    Resident,
    Ticket,
    aware,
)
from bot.tickets import service as tickets
from bot.tickets.access import Viewer, can_see

MIN_OPTIONS, MAX_OPTIONS = 2, 8
MAX_QUESTION = 300
MAX_OPTION = 60
MAX_DECISION = 1000
MAX_OPEN = timedelta(days=60)
MIN_OPEN = timedelta(minutes=10)
STAFF_ROLES = frozenset({"community_staff", "admin"})


class ConsultationError(Exception):
    """Base of what a resident's answer or a staff action can run into; carries the
    consultation concerned when there is one."""

    def __init__(self, message: str = "", consultation: Consultation | None = None) -> None:
        super().__init__(message)
        self.consultation = consultation


class Invalid(ConsultationError, ValueError):
    """Staff input with problems (every problem listed, in Chinese)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("；".join(problems))


class NotFound(ConsultationError, LookupError):
    """No such consultation (or ticket) for this person."""


class NotEligible(ConsultationError):
    """The resident does not live in the consultation's grid or building."""


class Closed(ConsultationError):
    """The consultation is closed or past its closing time."""


class AlreadyAnswered(ConsultationError):
    """The resident has answered this consultation already (one voice each)."""


class UnclearAnswer(ConsultationError):
    """The message names no option, or more than one."""


@dataclass(frozen=True)
class Draft:
    """What staff fill in on the page (strings as typed; checked by `create`)."""

    question: str
    options: list[str]
    closes_at: datetime | None
    scope: str  # grid | building
    building: int | None = None


# -- who may answer -------------------------------------------------------------------


def eligible_residents(session: Session, consultation: Consultation) -> list[Resident]:
    """Residents whose known address is in the consultation's grid or building."""
    query = select(Resident)
    if consultation.scope == "grid":
        query = query.where(Resident.grid_id == consultation.grid_id)
    else:
        query = query.where(
            Resident.community_id == consultation.community_id,
            Resident.building == consultation.building,
        )
    return list(session.execute(query.order_by(Resident.id)).scalars())


def may_answer(consultation: Consultation, resident: Resident | None) -> bool:
    if resident is None:
        return False
    if consultation.scope == "grid":
        return consultation.grid_id is not None and resident.grid_id == consultation.grid_id
    return (
        resident.community_id == consultation.community_id
        and resident.building is not None
        and resident.building == consultation.building
    )


def is_open(consultation: Consultation, now: datetime | None = None) -> bool:
    return consultation.status == "open" and aware(now) < consultation.closes_at


# -- staff: make and close ------------------------------------------------------------


def proposal_for(session: Session, worker: Viewer, number: str) -> Ticket:
    """The proposal ticket staff turn into a consultation (NotFound otherwise)."""
    ticket = tickets.get_ticket(session, number)
    if (
        ticket is None
        or worker.role not in STAFF_ROLES
        or not can_see(worker, ticket)
        or ticket.kind != "proposal"
    ):
        raise NotFound(number)
    return ticket


def _clean_options(options: list[str]) -> list[str]:
    return [o.strip() for o in options if o and o.strip()]


def problems_of(draft: Draft, ticket: Ticket, now: datetime) -> list[str]:
    """Everything wrong with `draft` (empty when it can be asked)."""
    problems: list[str] = []
    question = (draft.question or "").strip()
    if not question:
        problems.append("请填写要大家决定的问题")
    elif len(question) > MAX_QUESTION:
        problems.append(f"问题最多{MAX_QUESTION}字")
    options = _clean_options(draft.options)
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        problems.append(f"选项需要{MIN_OPTIONS}到{MAX_OPTIONS}个（每行一个）")
    if len(set(options)) != len(options):
        problems.append("选项不能重复")
    if any(len(o) > MAX_OPTION for o in options):
        problems.append(f"每个选项最多{MAX_OPTION}字")
    if draft.closes_at is None:
        problems.append("请填写截止时间")
    elif draft.closes_at < now + MIN_OPEN:
        problems.append("截止时间至少要在十分钟以后")
    elif draft.closes_at > now + MAX_OPEN:
        problems.append("截止时间不能超过60天")
    if draft.scope == "grid":
        if ticket.grid_id is None:
            problems.append("这条提议没有所属网格，请改为按楼栋征求意见")
    elif draft.scope == "building":
        if draft.building is None or not 0 < draft.building < 10_000:
            problems.append("请填写楼号")
    else:
        problems.append("请选择征求意见的范围（网格或楼栋）")
    if ticket.community_id is None:
        problems.append("这条提议没有所属社区")
    return problems


def create(
    session: Session,
    worker: Viewer,
    number: str,
    draft: Draft,
    *,
    actor: str,
    now: datetime | None = None,
) -> Consultation:
    """Turn the proposal `number` into a consultation and ask its residents."""
    now = aware(now)
    ticket = proposal_for(session, worker, number)
    problems = problems_of(draft, ticket, now)
    if problems:
        raise Invalid(problems)
    consultation = Consultation(
        ticket_id=ticket.id,
        community_id=ticket.community_id,
        scope=draft.scope,
        grid_id=ticket.grid_id if draft.scope == "grid" else None,
        building=draft.building if draft.scope == "building" else None,
        question=draft.question.strip(),
        options=_clean_options(draft.options),
        closes_at=draft.closes_at,
        status="open",
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(consultation)
    session.flush()
    tickets.add_note(
        session,
        ticket,
        actor,
        f"已发起居民协商：{consultation.question}",
        data={"consultation_id": consultation.id},
        now=now,
    )
    for resident in eligible_residents(session, consultation):
        notices.enqueue_question(session, consultation, resident, now=now)
    return consultation


def get_for_staff(session: Session, worker: Viewer, consultation_id: int) -> Consultation:
    """A consultation of the worker's community (any, for admins); NotFound otherwise."""
    consultation = session.get(Consultation, consultation_id)
    if consultation is None or worker.role not in STAFF_ROLES:
        raise NotFound(str(consultation_id))
    if worker.role != "admin" and consultation.community_id != worker.community_id:
        raise NotFound(str(consultation_id))
    return consultation


def of_community(session: Session, worker: Viewer) -> list[Consultation]:
    """The consultations staff may see, newest first."""
    if worker.role not in STAFF_ROLES:
        return []
    query = select(Consultation).order_by(Consultation.created_at.desc(), Consultation.id.desc())
    if worker.role != "admin":
        query = query.where(Consultation.community_id == worker.community_id)
    return list(session.execute(query.limit(200)).scalars())


def close(
    session: Session,
    worker: Viewer,
    consultation_id: int,
    decision: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> Consultation:
    """Close the consultation with the decision and publish both to its residents."""
    now = aware(now)
    consultation = get_for_staff(session, worker, consultation_id)
    words = (decision or "").strip()
    if consultation.status != "open":
        raise Closed(str(consultation_id), consultation)
    if not words:
        raise Invalid(["请填写协商的结果和决定"])
    if len(words) > MAX_DECISION:
        raise Invalid([f"决定最多{MAX_DECISION}字"])
    consultation.status = "closed"
    consultation.decision = words
    consultation.closed_by = actor
    consultation.closed_at = now
    consultation.updated_at = now
    session.flush()
    counts = results(session, consultation)
    if consultation.ticket is not None:
        tickets.add_note(
            session,
            consultation.ticket,
            actor,
            f"居民协商结束：{notices.results_line(consultation, counts)}；决定：{words}",
            data={"consultation_id": consultation.id},
            now=now,
        )
    told = {r.sender_id for r in eligible_residents(session, consultation)}
    told |= set(voters(session, consultation))
    for sender_id in sorted(told):
        notices.enqueue_result(session, consultation, sender_id, counts, now=now)
    return consultation


# -- counting -------------------------------------------------------------------------


def results(session: Session, consultation: Consultation) -> list[int]:
    """Answers per option (in the options' order)."""
    rows = session.execute(
        select(ConsultationVote.option, func.count(ConsultationVote.id))
        .where(ConsultationVote.consultation_id == consultation.id)
        .group_by(ConsultationVote.option)
    ).all()
    counts = [0] * len(consultation.options)
    for option, count in rows:
        if 0 <= option < len(counts):
            counts[option] = int(count)
    return counts


def voters(session: Session, consultation: Consultation) -> list[str]:
    return list(
        session.execute(
            select(ConsultationVote.voter).where(
                ConsultationVote.consultation_id == consultation.id
            )
        ).scalars()
    )


# -- residents: answer ----------------------------------------------------------------


def answer(
    session: Session,
    consultation_id: int,
    sender_id: str,
    option: int,
    *,
    channel: str,
    now: datetime | None = None,
) -> ConsultationVote:
    """Record the resident's one voice; raises NotFound, NotEligible, Closed,
    UnclearAnswer (no such option) or AlreadyAnswered, recording nothing."""
    now = aware(now)
    consultation = session.get(Consultation, consultation_id)
    if consultation is None:
        raise NotFound(str(consultation_id))
    if not may_answer(consultation, tickets.get_resident(session, sender_id)):
        raise NotEligible(str(consultation_id))
    if not is_open(consultation, now):
        raise Closed(str(consultation_id), consultation)
    if not 0 <= option < len(consultation.options):
        raise UnclearAnswer(str(option), consultation)
    vote = ConsultationVote(
        consultation_id=consultation.id, voter=sender_id, option=option, channel=channel, at=now
    )
    try:
        with session.begin_nested():
            session.add(vote)
            session.flush()
    except IntegrityError:
        raise AlreadyAnswered(str(consultation_id), consultation) from None
    return vote


@dataclass(frozen=True)
class Pending:
    """A consultation the resident may answer, and whether they have."""

    consultation: Consultation
    answered: int | None  # the option they chose, None while they have not


def for_resident(
    session: Session, sender_id: str, now: datetime | None = None, *, include_closed: bool = False
) -> list[Pending]:
    """The consultations of the resident's grid or building, newest first."""
    now = aware(now)
    resident = tickets.get_resident(session, sender_id)
    if resident is None:
        return []
    query = select(Consultation).order_by(Consultation.created_at.desc(), Consultation.id.desc())
    if not include_closed:
        query = query.where(Consultation.status == "open", Consultation.closes_at > now)
    out = []
    for consultation in session.execute(query.limit(100)).scalars():
        if not may_answer(consultation, resident):
            continue
        chosen = session.execute(
            select(ConsultationVote.option).where(
                ConsultationVote.consultation_id == consultation.id,
                ConsultationVote.voter == sender_id,
            )
        ).scalar_one_or_none()
        out.append(Pending(consultation, chosen))
    return out


def answer_from_text(
    session: Session, sender_id: str, text: str, now: datetime | None = None
) -> tuple[Consultation, ConsultationVote]:
    """A chat answer: to the newest open consultation of the resident's grid or
    building not answered yet. NotEligible when there is none for them at all,
    AlreadyAnswered when they answered every open one, UnclearAnswer (with the
    consultation in `args[0]`) when the text names no single option."""
    pending = for_resident(session, sender_id, now)
    if not pending:
        raise NotEligible(sender_id)
    waiting = [p.consultation for p in pending if p.answered is None]
    if not waiting:
        raise AlreadyAnswered(sender_id, pending[0].consultation)
    consultation = waiting[0]
    option = option_from_text(text, list(consultation.options))
    if option is None:
        raise UnclearAnswer(text, consultation)
    vote = answer(session, consultation.id, sender_id, option, channel="chat", now=now)
    return consultation, vote
