"""The ticket state machine: the only code that changes a ticket's status.

Statuses
    open       reported, waiting for the handler (grid worker or office)
    accepted   the handler has taken it on
    escalated  overdue (or pushed up by staff); now with the next level
    resolved   the handler says it is done; the resident may still object
    closed     finished (terminal)
    cancelled  withdrawn by the resident or staff (terminal)

Transitions (status, action) -> new status; anything not listed is illegal:

    open       accept   -> accepted
    open       resolve  -> resolved    (quick fixes need no separate accept)
    open       escalate -> escalated
    open       cancel   -> cancelled
    open       transfer -> open        (to another grid; the new worker accepts)
    accepted   resolve  -> resolved
    accepted   escalate -> escalated
    accepted   cancel   -> cancelled
    accepted   transfer -> open
    escalated  accept   -> accepted    (the higher level takes it on)
    escalated  resolve  -> resolved
    escalated  escalate -> escalated   (community -> street)
    escalated  cancel   -> cancelled
    escalated  transfer -> open
    resolved   close    -> closed      (resident satisfied, or staff close it)
    resolved   reopen   -> open        (resident not satisfied)

Closed and cancelled are final: a new report opens a new ticket. Escalating
a ticket that is already at street level is illegal as well. Notes are not
status changes and may be added in any status.

`transition` appends the matching TicketEvent in the caller's transaction and
marks the ticket so that the flush guard in bot.store.models accepts the
change; a status set any other way fails at flush.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from bot.store.models import Ticket, TicketEvent, aware
from bot.tickets.display import action_label, status_label


class Status(str, Enum):
    OPEN = "open"
    ACCEPTED = "accepted"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Action(str, Enum):
    ACCEPT = "accept"
    RESOLVE = "resolve"
    ESCALATE = "escalate"
    CANCEL = "cancel"
    TRANSFER = "transfer"
    CLOSE = "close"
    REOPEN = "reopen"


S, A = Status, Action

TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (S.OPEN, A.ACCEPT): S.ACCEPTED,
    (S.OPEN, A.RESOLVE): S.RESOLVED,
    (S.OPEN, A.ESCALATE): S.ESCALATED,
    (S.OPEN, A.CANCEL): S.CANCELLED,
    (S.OPEN, A.TRANSFER): S.OPEN,
    (S.ACCEPTED, A.RESOLVE): S.RESOLVED,
    (S.ACCEPTED, A.ESCALATE): S.ESCALATED,
    (S.ACCEPTED, A.CANCEL): S.CANCELLED,
    (S.ACCEPTED, A.TRANSFER): S.OPEN,
    (S.ESCALATED, A.ACCEPT): S.ACCEPTED,
    (S.ESCALATED, A.RESOLVE): S.RESOLVED,
    (S.ESCALATED, A.ESCALATE): S.ESCALATED,
    (S.ESCALATED, A.CANCEL): S.CANCELLED,
    (S.ESCALATED, A.TRANSFER): S.OPEN,
    (S.RESOLVED, A.CLOSE): S.CLOSED,
    (S.RESOLVED, A.REOPEN): S.OPEN,
}

# The event each action writes (TicketEvent.type).
EVENT_TYPE: dict[Action, str] = {
    A.ACCEPT: "accepted",
    A.RESOLVE: "resolved",
    A.ESCALATE: "escalated",
    A.CANCEL: "cancelled",
    A.TRANSFER: "transferred",
    A.CLOSE: "closed",
    A.REOPEN: "reopened",
}

TERMINAL: frozenset[Status] = frozenset({S.CLOSED, S.CANCELLED})
# Statuses in which someone still has to act; these can become overdue.
IN_PROGRESS: frozenset[Status] = frozenset({S.OPEN, S.ACCEPTED, S.ESCALATED})

LEVEL_ORDER = ("grid", "community", "street")


class IllegalTransition(Exception):
    """A status change the state machine does not allow; nothing was changed."""

    def __init__(
        self, status: str, action: str, number: str | None = None, why: str | None = None
    ) -> None:
        self.status = status
        self.action = action
        self.number = number
        st, ac = Status(status), Action(action)
        subject_zh = f"工单{number}" if number else "工单"
        subject_en = f"ticket {number}" if number else "the ticket"
        zh = why or f"{subject_zh}当前状态为“{status_label(st)}”，不能“{action_label(ac)}”"
        en = f"{subject_en} is {st.value}; cannot {ac.value}"
        super().__init__(f"{zh}。 / {en}.")


def next_status(status: str | Status, action: str | Action) -> Status:
    """The status after `action`, or IllegalTransition."""
    st, ac = Status(status), Action(action)
    try:
        return TRANSITIONS[(st, ac)]
    except KeyError:
        raise IllegalTransition(st.value, ac.value) from None


def can(status: str | Status, action: str | Action) -> bool:
    return (Status(status), Action(action)) in TRANSITIONS


def next_level(level: str) -> str | None:
    """The level above `level` (grid -> community -> street), None at the top."""
    index = LEVEL_ORDER.index(level)
    return LEVEL_ORDER[index + 1] if index + 1 < len(LEVEL_ORDER) else None


def transition(
    ticket: Ticket,
    action: str | Action,
    *,
    actor: str,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> TicketEvent:
    """Change `ticket`'s status by `action` and append the event (not committed).

    Raises IllegalTransition, leaving the ticket untouched, when the action is
    not allowed in the ticket's current status.
    """
    ac = Action(action)
    current = Status(ticket.status)
    if (current, ac) not in TRANSITIONS:
        raise IllegalTransition(current.value, ac.value, ticket.number)
    if ac is A.ESCALATE and next_level(ticket.level) is None:
        raise IllegalTransition(
            current.value,
            ac.value,
            ticket.number,
            why=f"工单{ticket.number}已在街道层级，不能再升级",
        )
    new = TRANSITIONS[(current, ac)]
    now = aware(now)
    event = TicketEvent(
        type=EVENT_TYPE[ac],
        actor=actor,
        note=note,
        data={"from": current.value, "to": new.value, **(data or {})},
        at=now,
    )
    # Mark first: the flush guard only lets this exact status through.
    ticket._approved_status = new.value
    ticket.status = new.value
    ticket.updated_at = now
    ticket.events.append(event)
    return event


def record(
    ticket: Ticket,
    type_: str,
    *,
    actor: str,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> TicketEvent:
    """Append an event that does not change the status (created, assigned, note)."""
    if type_ not in ("created", "assigned", "note"):
        raise ValueError(f"{type_!r} changes the status; use transition()")
    event = TicketEvent(type=type_, actor=actor, note=note, data=data or {}, at=aware(now))
    ticket.events.append(event)
    return event
