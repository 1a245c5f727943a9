"""What residents are told about a consultation, written into bot.notify's outbox
in the transaction of the change (asked when it opens, told the result when it
closes). WeChat residents are pushed to; others hear it with their next message.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bot.notify import outbox
from bot.settings import get_settings
from bot.store.models import Consultation, Notification, Resident
from bot.tickets import display

KIND_QUESTION = "consultation"
KIND_RESULT = "consultation_result"
MY_PAGE_PATH = "/me"


def scope_label(consultation: Consultation) -> str:
    """和平新村第一网格 / 和平新村社区3号楼: whom a consultation asks."""
    if consultation.scope == "grid" and consultation.grid is not None:
        return consultation.grid.name
    community = consultation.community.name if consultation.community else ""
    return f"{community}{consultation.building}号楼"


def options_lines(consultation: Consultation) -> str:
    return "\n".join(f"{i}. {text}" for i, text in enumerate(consultation.options, 1))


def results_line(consultation: Consultation, counts: list[int]) -> str:
    parts = [f"{text} {n}票" for text, n in zip(consultation.options, counts, strict=False)]
    return "；".join(parts) + f"（共{sum(counts)}人参与）"


def question_text(consultation: Consultation) -> str:
    page = get_settings().public_web_url + MY_PAGE_PATH
    return (
        f"【居民协商】请{scope_label(consultation)}的居民一起决定：\n{consultation.question}\n"
        f"{options_lines(consultation)}\n"
        f"请回复“投票”加选项编号（例如“投票1”），每户居民一票，"
        f"{display.resident_time(consultation.closes_at)}截止。"
        f"也可以在“我的工单”页面作答：{page}"
    )


def result_text(consultation: Consultation, counts: list[int]) -> str:
    return (
        f"【协商结果】{consultation.question}\n"
        f"结果：{results_line(consultation, counts)}\n"
        f"决定：{consultation.decision or ''}"
    )


def enqueue_question(
    session: Session, consultation: Consultation, resident: Resident, now: datetime | None = None
) -> Notification:
    return outbox.enqueue_resident_text(
        session,
        resident.sender_id,
        KIND_QUESTION,
        question_text(consultation),
        pushable=resident.channel == "wechat",
        now=now,
    )


def enqueue_result(
    session: Session,
    consultation: Consultation,
    sender_id: str,
    counts: list[int],
    now: datetime | None = None,
) -> Notification:
    resident = session.query(Resident).filter_by(sender_id=sender_id).one_or_none()
    return outbox.enqueue_resident_text(
        session,
        sender_id,
        KIND_RESULT,
        result_text(consultation, counts),
        pushable=resident is not None and resident.channel == "wechat",
        now=now,
    )
