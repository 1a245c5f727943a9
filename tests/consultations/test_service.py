"""bot.consultations.service on SQLite and PostgreSQL: making a consultation from a
proposal, one voice per resident (also under concurrent answers), exact counts,
grids kept apart, closing with a decision published back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.accounts import CurrentWorker
from bot.consultations import service
from bot.consultations.service import Draft
from bot.routing.locator import get_locator
from bot.store.db import session_scope
from bot.store.models import (
    Community,
    Consultation,
    ConsultationVote,
    Grid,
    Notification,
    Resident,
    utcnow,
)
from bot.tickets import service as tickets

HPXC = "和平新村社区"
RESIDENTS = 24


def _staff(engine: Engine, community: str = HPXC, role: str = "community_staff") -> CurrentWorker:
    with session_scope(engine, readonly=True) as s:
        cid = s.execute(select(Community.id).where(Community.name == community)).scalar_one()
    return CurrentWorker(id=9999, name="周敏", phone=None, role=role, community_id=cid)


def _grid_id(engine: Engine, code: str) -> int:
    with session_scope(engine, readonly=True) as s:
        return s.execute(select(Grid.id).where(Grid.code == code)).scalar_one()


def _proposal(
    engine: Engine, where: str = "和平新村3号楼2单元501", sender: str = "oProposer"
) -> str:
    with session_scope(engine) as s:
        located = get_locator(s).locate_text(where)
        ticket = tickets.open_ticket(
            s,
            sender_id=sender,
            channel="wechat",
            message_id=f"p-{sender}-{where}",
            category_code="PROPOSAL",
            description="建议在小区划定错时停车位",
            location=located,
        )
        return ticket.number


def _residents(engine: Engine, grid_code: str, prefix: str, count: int, building: int) -> list[str]:
    grid_id = _grid_id(engine, grid_code)
    with session_scope(engine) as s:
        community_id = s.get(Grid, grid_id).community_id
        ids = [f"{prefix}{i:03d}" for i in range(count)]
        for sender in ids:
            s.add(
                Resident(
                    sender_id=sender,
                    channel="wechat",
                    community_id=community_id,
                    grid_id=grid_id,
                    building=building,
                )
            )
    return ids


def _draft(**changes) -> Draft:
    values = {
        "question": "小区夜间错时停车位设在哪里？",
        "options": ["东门广场", "北侧路边", "暂不设置"],
        "closes_at": utcnow() + timedelta(days=3),
        "scope": "grid",
    }
    values.update(changes)
    return Draft(**values)


def _consult(engine: Engine, number: str, **changes) -> int:
    with session_scope(engine) as s:
        return service.create(
            s, _staff(engine), number, _draft(**changes), actor="worker:9999:周敏"
        ).id


def test_a_proposal_becomes_a_consultation_and_its_grid_is_asked(demo_engine: Engine) -> None:
    ours = _residents(demo_engine, "HPXC-01", "oHp", 3, building=3)
    _residents(demo_engine, "HPXC-02", "oOther", 2, building=7)
    number = _proposal(demo_engine)
    consultation_id = _consult(demo_engine, number)
    with session_scope(demo_engine, readonly=True) as s:
        asked = s.execute(
            select(Notification.target).where(Notification.kind == "consultation")
        ).scalars()
        assert sorted(asked) == ours
        text = s.execute(select(Notification.payload).limit(1)).scalar_one()["text"]
        assert "东门广场" in text and "投票" in text
        ticket = tickets.get_ticket(s, number)
        assert ticket.events[-1].data["consultation_id"] == consultation_id


def test_staff_input_is_checked(demo_engine: Engine) -> None:
    number = _proposal(demo_engine)
    bad = [
        _draft(question="  "),
        _draft(options=["只有一个"]),
        _draft(options=["同一个", "同一个"]),
        _draft(options=[str(i) for i in range(9)]),
        _draft(closes_at=utcnow() - timedelta(hours=1)),
        _draft(closes_at=utcnow() + timedelta(days=400)),
        _draft(closes_at=None),
        _draft(scope="street"),
        _draft(scope="building", building=None),
        _draft(question="问" * 301),
    ]
    for draft in bad:
        with pytest.raises(service.Invalid) as raised, session_scope(demo_engine) as s:
            service.create(s, _staff(demo_engine), number, draft, actor="worker:9999:周敏")
        assert raised.value.problems
    with session_scope(demo_engine, readonly=True) as s:
        assert s.execute(select(func.count(Consultation.id))).scalar_one() == 0


def test_only_staff_of_the_community_turn_proposals_into_consultations(
    demo_engine: Engine,
) -> None:
    number = _proposal(demo_engine)
    heating = None
    with session_scope(demo_engine) as s:
        located = get_locator(s).locate_text("和平新村3号楼")
        heating = tickets.open_ticket(
            s,
            sender_id="oX",
            channel="wechat",
            message_id="h1",
            category_code="HEATING",
            description="暖气不热",
            location=located,
        ).number
    other_staff = _staff(demo_engine, "裕园社区")
    worker = CurrentWorker(id=1, name="王芳", phone=None, role="grid_worker", community_id=None)
    for who, which in ((other_staff, number), (worker, number), (_staff(demo_engine), heating)):
        with pytest.raises(service.NotFound), session_scope(demo_engine) as s:
            service.create(s, who, which, _draft(), actor="x")


def test_one_voice_per_resident_and_not_in_another_grid(demo_engine: Engine) -> None:
    [me] = _residents(demo_engine, "HPXC-01", "oMe", 1, building=3)
    [stranger] = _residents(demo_engine, "YY-01", "oYy", 1, building=2)
    consultation_id = _consult(demo_engine, _proposal(demo_engine))
    with session_scope(demo_engine) as s:
        service.answer(s, consultation_id, me, 1, channel="page")
    for option in (1, 0):
        with pytest.raises(service.AlreadyAnswered), session_scope(demo_engine) as s:
            service.answer(s, consultation_id, me, option, channel="chat")
    with pytest.raises(service.NotEligible), session_scope(demo_engine) as s:
        service.answer(s, consultation_id, stranger, 0, channel="page")
    with pytest.raises(service.NotEligible), session_scope(demo_engine) as s:
        service.answer(s, consultation_id, "oUnknownResident", 0, channel="page")
    with pytest.raises(service.NotFound), session_scope(demo_engine) as s:
        service.answer(s, 987654, me, 0, channel="page")
    with session_scope(demo_engine, readonly=True) as s:
        assert service.results(s, s.get(Consultation, consultation_id)) == [0, 1, 0]


def test_bad_options_and_closed_consultations_record_nothing(demo_engine: Engine) -> None:
    a, b = _residents(demo_engine, "HPXC-01", "oR", 2, building=3)
    consultation_id = _consult(demo_engine, _proposal(demo_engine))
    for option in (-1, 3, 99):
        with pytest.raises(service.UnclearAnswer), session_scope(demo_engine) as s:
            service.answer(s, consultation_id, a, option, channel="page")
    later = utcnow() + timedelta(days=4)  # past closes_at
    with pytest.raises(service.Closed), session_scope(demo_engine) as s:
        service.answer(s, consultation_id, a, 0, channel="page", now=later)
    with session_scope(demo_engine) as s:
        service.answer(s, consultation_id, b, 2, channel="chat")
        service.close(s, _staff(demo_engine), consultation_id, "暂不设置，明年再议", actor="w")
    with pytest.raises(service.Closed), session_scope(demo_engine) as s:
        service.answer(s, consultation_id, a, 0, channel="page")
    with pytest.raises(service.Closed), session_scope(demo_engine) as s:
        service.close(s, _staff(demo_engine), consultation_id, "again", actor="w")
    with session_scope(demo_engine, readonly=True) as s:
        results = s.execute(
            select(Notification.target, Notification.payload).where(
                Notification.kind == "consultation_result"
            )
        ).all()
        assert sorted(t for t, _ in results) == sorted([a, b])
        assert all(
            "暂不设置，明年再议" in p["text"] and "暂不设置 1票" in p["text"] for _, p in results
        )


def test_chat_answers(demo_engine: Engine) -> None:
    [me] = _residents(demo_engine, "HPXC-01", "oChat", 1, building=3)
    [far] = _residents(demo_engine, "HPXC-02", "oFar", 1, building=7)
    consultation_id = _consult(demo_engine, _proposal(demo_engine))
    with pytest.raises(service.NotEligible), session_scope(demo_engine) as s:
        service.answer_from_text(s, far, "投票1")
    with session_scope(demo_engine) as s:
        with pytest.raises(service.UnclearAnswer) as unclear:
            service.answer_from_text(s, me, "我选哪个好呢")
        assert unclear.value.consultation.id == consultation_id
    with session_scope(demo_engine) as s:
        consultation, vote = service.answer_from_text(s, me, "我选北侧路边")
        assert vote.option == 1 and vote.channel == "chat"
    with pytest.raises(service.AlreadyAnswered), session_scope(demo_engine) as s:
        service.answer_from_text(s, me, "投票3")


def test_counts_are_exact_under_concurrent_answers(demo_engine: Engine) -> None:
    voters = _residents(demo_engine, "HPXC-01", "oCc", RESIDENTS, building=3)
    consultation_id = _consult(demo_engine, _proposal(demo_engine))

    def vote(sender: str, option: int) -> str:
        try:
            with session_scope(demo_engine) as s:
                service.answer(s, consultation_id, sender, option, channel="page")
            return f"{sender}:{option}"
        except service.AlreadyAnswered:
            return "refused"

    # every resident answers twice at the same moment (double tap, chat and page)
    jobs = [(v, i % 3) for i, v in enumerate(voters)] + [
        (v, (i + 1) % 3) for i, v in enumerate(voters)
    ]
    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(lambda job: vote(*job), jobs))
    accepted = [o for o in outcomes if o != "refused"]
    assert len(accepted) == RESIDENTS
    assert len({o.split(":")[0] for o in accepted}) == RESIDENTS  # one each
    expected = [0, 0, 0]
    for outcome in accepted:
        expected[int(outcome.split(":")[1])] += 1
    with session_scope(demo_engine, readonly=True) as s:
        consultation = s.get(Consultation, consultation_id)
        assert service.results(s, consultation) == expected
        assert sum(service.results(s, consultation)) == RESIDENTS
        rows = s.execute(
            select(func.count(ConsultationVote.id)).where(
                ConsultationVote.consultation_id == consultation_id
            )
        ).scalar_one()
        assert rows == RESIDENTS


def test_building_scope(demo_engine: Engine) -> None:
    [in_building] = _residents(demo_engine, "HPXC-01", "oB3", 1, building=3)
    [same_grid_other_building] = _residents(demo_engine, "HPXC-01", "oB4", 1, building=4)
    consultation_id = _consult(demo_engine, _proposal(demo_engine), scope="building", building=3)
    with session_scope(demo_engine) as s:
        service.answer(s, consultation_id, in_building, 0, channel="page")
    with pytest.raises(service.NotEligible), session_scope(demo_engine) as s:
        service.answer(s, consultation_id, same_grid_other_building, 0, channel="page")
