"""bot.tickets.mine: a resident's own tickets and what they may do with them."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from bot.tickets import mine, service
from bot.tickets.state import IllegalTransition


def _open(session: Session, sender: str, message: str) -> str:
    ticket = service.open_ticket(
        session,
        sender_id=sender,
        channel="wechat",
        message_id=message,
        category_code="HEATING",
        description="暖气不热",
    )
    session.commit()
    return ticket.number


@pytest.mark.parametrize(
    ("status", "buttons"),
    [
        ("open", ["cancel"]),
        ("accepted", ["cancel"]),
        ("escalated", ["cancel"]),
        ("resolved", ["satisfied", "unsatisfied", "reopen"]),
        ("closed", []),
        ("cancelled", []),
    ],
)
def test_buttons_follow_the_state_machine(status: str, buttons: list[str]) -> None:
    assert [b.action for b in mine.available_actions(status)] == buttons


def test_only_the_residents_own_tickets(demo_session: Session) -> None:
    mine_number = _open(demo_session, "oMe", "m1")
    other = _open(demo_session, "oOther", "m2")
    listed = mine.my_tickets(demo_session, "oMe")
    assert [t.number for t in listed] == [mine_number]
    assert listed[0].status_label == "待受理"
    with pytest.raises(mine.NotYours):
        mine.act(demo_session, "oMe", other, "cancel")
    with pytest.raises(mine.NotYours):
        mine.act(demo_session, "oMe", "20990101-0001", "cancel")
    with pytest.raises(ValueError):
        mine.act(demo_session, "oMe", mine_number, "delete")
    with pytest.raises(IllegalTransition):
        mine.act(demo_session, "oMe", mine_number, "satisfied")
    mine.act(demo_session, "oMe", mine_number, "cancel", reason="x" * 5000)
    demo_session.commit()
    ticket = service.get_ticket(demo_session, mine_number)
    assert ticket.status == "cancelled"
    assert len(ticket.events[-1].note) == mine.MAX_REASON


def test_worker_notes_and_photo_links(demo_session: Session) -> None:
    number = _open(demo_session, "oMe", "m3")
    ticket = service.get_ticket(demo_session, number)
    ticket.photos = ["https://img.example.org/1.jpg", "MEDIA_ID_123", "javascript:alert(1)"]
    service.add_note(demo_session, number, "worker:1:王芳", "明天上门")
    service.add_note(demo_session, number, "system", "内部")
    demo_session.commit()
    [shown] = mine.my_tickets(demo_session, "oMe")
    assert [n.note for n in shown.worker_notes] == ["明天上门"]
    assert shown.photos == ["https://img.example.org/1.jpg"]
