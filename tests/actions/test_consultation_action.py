"""The consultation answer action (actions/consultations.py) against trackers."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.consultations import ActionAnswerConsultation
from bot.accounts import CurrentWorker
from bot.consultations import service
from bot.routing.locator import get_locator
from bot.store.db import make_engine, session_scope
from bot.store.models import ConsultationVote, Grid, Resident, utcnow
from bot.tickets import service as tickets
from tests.actions.conftest import DOMAIN, make_tracker, responses

VOTER = "oChatVoter"


def _setup(url: str) -> None:
    engine = make_engine(url)
    with session_scope(engine) as s:
        grid = s.execute(select(Grid).where(Grid.code == "HPXC-01")).scalar_one()
        s.add(
            Resident(
                sender_id=VOTER,
                channel="wechat",
                community_id=grid.community_id,
                grid_id=grid.id,
                building=3,
            )
        )
        number = tickets.open_ticket(
            s,
            sender_id="oProposer",
            channel="wechat",
            message_id="p1",
            category_code="PROPOSAL",
            description="建议装充电桩",
            location=get_locator(s).locate_text("和平新村3号楼"),
        ).number
        staff = CurrentWorker(
            id=1, name="周敏", phone=None, role="community_staff", community_id=grid.community_id
        )
        service.create(
            s,
            staff,
            number,
            service.Draft(
                question="充电桩装在哪里？",
                options=["东门车棚", "北门空地"],
                closes_at=utcnow() + timedelta(days=2),
                scope="grid",
            ),
            actor="worker:1:周敏",
        )
    engine.dispose()


def _run(text: str, sender: str = VOTER) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(text, intent="answer_consultation", sender_id=sender)
    ActionAnswerConsultation().run(dispatcher, tracker, DOMAIN)
    return dispatcher


def test_answer_in_the_chat(demo_database: str) -> None:
    _setup(demo_database)
    unclear = _run("我投票")
    assert responses(unclear) == ["utter_consultation_unclear"]
    assert "1. 东门车棚" in unclear.messages[0]["options"]
    recorded = _run("我选北门空地")
    assert responses(recorded) == ["utter_consultation_recorded"]
    assert recorded.messages[0]["choice"] == "北门空地"
    assert responses(_run("投票1")) == ["utter_consultation_already"]
    assert responses(_run("投票1", sender="oNobodyKnown")) == ["utter_consultation_none"]
    engine = make_engine(demo_database)
    with session_scope(engine, readonly=True) as s:
        assert s.execute(select(ConsultationVote.voter, ConsultationVote.option)).all() == [
            (VOTER, 1)
        ]
    engine.dispose()


def test_every_outcome_has_a_reply_in_the_domain() -> None:
    for kind in ("recorded", "already", "none", "unclear", "closed", "failed"):
        assert f"utter_consultation_{kind}" in DOMAIN["responses"]
