"""Writing notifications into the outbox, in the transaction of the change they report.

bot.tickets.service calls these right after a change is flushed, so a ticket change
and its notice commit (or roll back) together: there is no change without its notice
and no notice without its change. Nothing here talks to the network; the web app's
sender (bot.notify.sender) delivers pending rows later and retries failures, so a
failed push never loses a ticket.

Rows:
    wecom   target = the group robot's key; payload = the robot's JSON body (markdown)
    wechat  target = the resident's OpenID; payload = {"text": ..., "values": {...}}
            (values: what a template message shows, bot.notify.template)

`delivered_via` records how a resident's news went out: customer_service,
template or next_message.

Residents who did not write through WeChat cannot be pushed to: their notices are
stored `deferred` at once and given with their next message (`pop_deferred_notices`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.notify import template
from bot.settings import Settings, get_settings
from bot.store.models import Notification, Ticket, Worker, aware
from bot.tickets import display

logger = logging.getLogger(__name__)

__all__ = [
    "KIND_ACCEPTED",
    "KIND_NEW_TICKET",
    "KIND_REOPENED",
    "KIND_RESOLVED",
    "RATING_PROMPT",
    "TICKET_PATH",
    "enqueue_new_ticket",
    "enqueue_reopened",
    "enqueue_resident_text",
    "enqueue_resident_update",
    "pop_deferred_notices",
    "pop_deferred_notices_from_store",
    "robot_key_for",
    "ticket_url",
]

KIND_NEW_TICKET = "new_ticket"
KIND_ACCEPTED = "accepted"
KIND_RESOLVED = "resolved"
KIND_REOPENED = "reopened"
KIND_ESCALATED = "escalated"
RESIDENT_KINDS = (KIND_ACCEPTED, KIND_RESOLVED)

# How a resident's news went out (Notification.delivered_via).
VIA_CUSTOMER_SERVICE = "customer_service"  # within WeChat's 48-hour window
VIA_TEMPLATE = "template"  # outside it, a template message
VIA_NEXT_MESSAGE = "next_message"  # no template configured: with their next reply

# The worker pages' URL of one ticket (the web app's worker views).
TICKET_PATH = "/tickets/{number}"

MAX_WECOM_BYTES = 2048  # the robot refuses longer content
MAX_WECHAT_BYTES = 2000  # a customer-service text; WeChat's limit is 2,048 bytes
EXCERPT_CHARS = 120
NOTE_CHARS = 300
ELLIPSIS = "…"

RATING_PROMPT = "满意请回复“满意”，不满意请回复“不满意”。"

# Deferred news older than this is no longer worth telling (the resident has long
# seen the outcome some other way); it stays in the outbox as it is.
DEFERRED_MAX_AGE = timedelta(days=30)
MAX_DEFERRED_NOTICES = 5


# -- where -----------------------------------------------------------------------


def robot_key_for(ticket: Ticket) -> str | None:
    """The WeCom group robot that hears about `ticket`, or None.

    A grid-level ticket goes to its grid's robot; a ticket above grid level (or
    without a grid) to its community's robot. No key configured: no push.
    """
    if ticket.level == "grid" and ticket.grid is not None:
        return (ticket.grid.wecom_webhook_key or "").strip() or None
    if ticket.community is not None:
        return (ticket.community.wecom_webhook_key or "").strip() or None
    return None


def ticket_url(number: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return settings.public_web_url + TICKET_PATH.format(number=number)


# -- text helpers ----------------------------------------------------------------------


def _fit_bytes(text: str, limit: int) -> str:
    if len(text.encode("utf-8")) <= limit:
        return text
    budget = limit - len(ELLIPSIS.encode("utf-8"))
    return text.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip() + ELLIPSIS


def _excerpt(text: str | None, chars: int) -> str:
    one_line = re.sub(r"\s+", " ", text or "").strip()
    return one_line if len(one_line) <= chars else one_line[:chars].rstrip() + ELLIPSIS


def _md_safe(text: str) -> str:
    """Residents' words inside WeCom markdown: no mentions, tags or links of theirs."""
    return (
        text.replace("<", "＜")
        .replace(">", "＞")
        .replace("[", "［")
        .replace("]", "］")
        .replace("`", "'")
        .replace("*", "＊")
    )


def _address(ticket: Ticket) -> str:
    """The address, and the resident's own words for it when they say more."""
    place = display.place_of(ticket)
    label = display.address_label(place) or display.NO_ADDRESS
    words = display.words_beside(label, place)
    return f"{label}（{words}）" if words else label


def _handler_line(ticket: Ticket) -> str:
    """Who should act, naming the worker and mentioning them in the group."""
    worker: Worker | None = ticket.assignee
    if worker is None:
        return f"办理单位：{display.office_of(ticket)}"
    line = f"{display.role_label(worker.role)}：{_md_safe(worker.name)}"
    if worker.wecom_userid:
        line += f" <@{worker.wecom_userid}>"
    elif worker.phone:
        line += f"（{worker.phone}）"
    return line


def _wecom_markdown(title: str, lines: list[str], ticket: Ticket, mention: str) -> dict:
    """The robot's JSON body; the description excerpt shrinks until it fits 2,048 bytes."""
    link = f"[查看工单]({ticket_url(ticket.number)})"
    excerpt_chars = EXCERPT_CHARS
    while True:
        description = _md_safe(_excerpt(ticket.description, excerpt_chars))
        body = [f"## {title}", *lines, f"> 内容：{description}", mention, link]
        content = "\n".join(line for line in body if line)
        if len(content.encode("utf-8")) <= MAX_WECOM_BYTES or excerpt_chars <= 10:
            break
        excerpt_chars //= 2
    return {"msgtype": "markdown", "markdown": {"content": _fit_bytes(content, MAX_WECOM_BYTES)}}


def _add(
    session: Session,
    ticket: Ticket,
    *,
    channel: str,
    target: str,
    kind: str,
    payload: dict,
    now: datetime,
    status: str = "pending",
    last_error: str | None = None,
) -> Notification:
    notification = Notification(
        ticket_id=ticket.id,
        channel=channel,
        target=target,
        kind=kind,
        payload=payload,
        status=status,
        attempts=0,
        next_attempt_at=now if status == "pending" else None,
        last_error=last_error,
        created_at=now,
        updated_at=now,
    )
    session.add(notification)
    session.flush()
    return notification


# -- to workers ------------------------------------------------------------------------


def _to_robot(
    session: Session, ticket: Ticket, kind: str, title: str, lines: list[str], now: datetime | None
) -> Notification | None:
    """A markdown message to the ticket's WeCom robot; None when it has no key."""
    key = robot_key_for(ticket)
    if key is None:
        return None
    payload = _wecom_markdown(title, lines, ticket, _handler_line(ticket))
    return _add(
        session, ticket, channel="wecom", target=key, kind=kind, payload=payload, now=aware(now)
    )


def _category_line(ticket: Ticket, highlight: bool = True) -> str:
    label = _md_safe(display.category_label(ticket.category_code))
    return f'> 类别：<font color="warning">{label}</font>' if highlight else f"> 类别：{label}"


def _address_line(ticket: Ticket) -> str:
    return f"> 地址：{_md_safe(_address(ticket))}"


def enqueue_new_ticket(
    session: Session, ticket: Ticket, now: datetime | None = None
) -> Notification | None:
    """Tell the grid's (or community's) robot about a new ticket; None without a key."""
    lines = [
        _category_line(ticket),
        _address_line(ticket),
        f"> 办理时限：{display.deadline_text(ticket.due_at)}",
    ]
    return _to_robot(session, ticket, KIND_NEW_TICKET, f"新工单 {ticket.number}", lines, now)


def enqueue_escalated(
    session: Session, ticket: Ticket, reason: str, now: datetime | None = None
) -> Notification | None:
    """Tell the next level that a ticket came up to it (once per escalation step).

    After escalation the ticket is above grid level, so this goes to the
    community's robot; None without a key.
    """
    lines = [
        f"> 原因：{_md_safe(reason)}",
        _category_line(ticket),
        _address_line(ticket),
        f"> 新办理时限：{display.deadline_text(ticket.due_at)}",
    ]
    return _to_robot(session, ticket, KIND_ESCALATED, f"工单升级 {ticket.number}", lines, now)


def enqueue_reopened(
    session: Session,
    ticket: Ticket,
    reason: str | None = None,
    data: dict | None = None,
    now: datetime | None = None,
) -> Notification | None:
    """Tell the worker's robot that the ticket is open again (e.g. resident not satisfied)."""
    unsatisfied = (data or {}).get("rating") == "unsatisfied"
    headline = "居民不满意，工单已重新打开" if unsatisfied else "工单已重新打开"
    lines = [
        f'> <font color="warning">{headline}</font>',
        _category_line(ticket, highlight=False),
        _address_line(ticket),
    ]
    if reason:
        lines.append(f"> 原因：{_md_safe(_excerpt(reason, EXCERPT_CHARS))}")
    lines.append(f"> 新办理时限：{display.deadline_text(ticket.due_at)}")
    title = f"工单 {ticket.number} 重新打开"
    return _to_robot(session, ticket, KIND_REOPENED, title, lines, now)


# -- to residents ----------------------------------------------------------------------


def resident_text(ticket: Ticket, kind: str, note: str | None = None) -> str:
    """What the resident is told when the ticket is accepted or resolved."""
    subject = display.resident_subject(ticket.kind, display.category_label(ticket.category_code))
    if kind == KIND_ACCEPTED:
        who = display.handler_of(ticket)
        text = f"{subject}（工单号{ticket.number}）已由{who}受理，正在处理。"
        if note:
            text += f"\n处理说明：{_excerpt(note, NOTE_CHARS)}"
        return _fit_bytes(text, MAX_WECHAT_BYTES)
    if kind == KIND_RESOLVED:
        done = f"{subject}已处理：{_excerpt(note, NOTE_CHARS)}" if note else f"{subject}已处理。"
        # The rating question must survive any cut.
        suffix = f"（工单号{ticket.number}）\n{RATING_PROMPT}"
        return _fit_bytes(done, MAX_WECHAT_BYTES - len(suffix.encode("utf-8"))) + suffix
    raise ValueError(f"no resident notice for {kind!r}")


# Channels whose tickets come from systems, not from a resident in a chat.
NO_RESIDENT_CHANNELS = frozenset({"open311"})


def enqueue_resident_update(
    session: Session,
    ticket: Ticket,
    kind: str,
    note: str | None = None,
    now: datetime | None = None,
) -> Notification | None:
    """Tell the resident that their ticket was accepted or resolved.

    WeChat residents are pushed to (the sender defers the notice when WeChat no longer
    allows it); residents of other chat channels cannot be pushed to, so the notice is
    deferred at once and given with their next message. Requests from other city
    systems (Open311) have no resident to tell: they read the status through the API.
    """
    if kind not in RESIDENT_KINDS:
        raise ValueError(f"no resident notice for {kind!r}")
    if ticket.channel in NO_RESIDENT_CHANNELS:
        return None
    now = aware(now)
    pushable = ticket.channel == "wechat"
    return _add(
        session,
        ticket,
        channel="wechat",
        target=ticket.sender_id,
        kind=kind,
        payload={
            "text": resident_text(ticket, kind, note),
            # for a template message, should the 48-hour window be closed
            "values": template.values_for(ticket, note, now),
        },
        now=now,
        status="pending" if pushable else "deferred",
        last_error=None if pushable else f"channel {ticket.channel!r}: no push",
    )


def enqueue_resident_text(
    session: Session,
    sender_id: str,
    kind: str,
    text: str,
    *,
    pushable: bool,
    ticket_id: int | None = None,
    now: datetime | None = None,
) -> Notification:
    """A notice to a resident that is not about one of their own tickets (a
    consultation's question or result). Pushed through WeChat when `pushable` (the
    sender defers it when WeChat no longer allows a push), else deferred at once and
    given with their next message."""
    now = aware(now)
    notification = Notification(
        ticket_id=ticket_id,
        channel="wechat",
        target=sender_id,
        kind=kind,
        payload={"text": _fit_bytes(text, MAX_WECHAT_BYTES)},
        status="pending" if pushable else "deferred",
        attempts=0,
        next_attempt_at=now if pushable else None,
        last_error=None if pushable else "not a WeChat resident: no push",
        created_at=now,
        updated_at=now,
    )
    session.add(notification)
    session.flush()
    return notification


def pop_deferred_notices(
    session: Session, sender_id: str, now: datetime | None = None
) -> list[str]:
    """The deferred news for a resident, oldest first, marked sent (once only).

    Only the newest notice of each ticket is given (a resolution makes the earlier
    acceptance moot). Each row is claimed with a conditional UPDATE, so two messages
    of the same resident processed at once do not both give the same news.
    """
    now = aware(now)
    rows = (
        session.execute(
            select(Notification)
            .where(
                Notification.channel == "wechat",
                Notification.target == sender_id,
                Notification.status == "deferred",
                Notification.created_at >= now - DEFERRED_MAX_AGE,
            )
            .order_by(Notification.created_at, Notification.id)
        )
        .scalars()
        .all()
    )
    newest: dict[object, Notification] = {}
    for row in rows:
        newest[row.ticket_id if row.ticket_id is not None else ("row", row.id)] = row
    keep = {row.id for row in list(newest.values())[-MAX_DEFERRED_NOTICES:]}
    texts: list[str] = []
    for row in rows:
        claimed = session.execute(
            update(Notification)
            .where(Notification.id == row.id, Notification.status == "deferred")
            .values(status="sent", sent_at=now, updated_at=now, delivered_via=VIA_NEXT_MESSAGE)
            .execution_options(synchronize_session=False)
        ).rowcount
        text = (row.payload or {}).get("text")
        if claimed and row.id in keep and isinstance(text, str) and text.strip():
            texts.append(text.strip())
    return texts


def _has_deferred(session: Session, sender_id: str) -> bool:
    return (
        session.execute(
            select(Notification.id)
            .where(
                Notification.channel == "wechat",
                Notification.target == sender_id,
                Notification.status == "deferred",
                Notification.created_at >= aware(None) - DEFERRED_MAX_AGE,
            )
            .limit(1)
        ).first()
        is not None
    )


async def pop_deferred_notices_from_store(sender_id: str) -> list[str]:
    """`pop_deferred_notices` on this process's database, off the event loop.

    A read-only look first: most messages have no deferred news, and those must not
    wait for SQLite's write lock.
    """
    from bot.store.db import get_engine, session_scope

    def work() -> list[str]:
        engine = get_engine()
        with session_scope(engine, readonly=True) as session:
            if not _has_deferred(session, sender_id):
                return []
        with session_scope(engine) as session:
            return pop_deferred_notices(session, sender_id)

    return await asyncio.to_thread(work)
