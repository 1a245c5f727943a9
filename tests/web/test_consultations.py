"""Consultations over HTTP: staff turn a proposal into a consultation, residents
answer on the "my reports" page (one voice, own grid only), staff close it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.settings import Settings
from bot.store.db import session_scope
from bot.store.models import Consultation, ConsultationVote, Grid, Resident, utcnow
from bot.tickets.display import local_time
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi
from tests.web.conftest import ClientFactory, WebClient, add_ticket, csrf_from
from tests.web.test_my_reports import _sign_in


@pytest.fixture
def web_settings(web_settings: Settings, fake_wechat_api: FakeWeChatApi) -> Settings:
    return replace(
        web_settings,
        wechat_api_base=fake_wechat_api.url,
        wechat_appid=APPID,
        wechat_app_secret=APP_SECRET,
        web_base_url="https://nb.example.org",
        wechat_oauth_authorize_url=fake_wechat_api.url + "/connect/oauth2/authorize",
    )


def _resident(engine, sender: str, grid_code: str, building: int) -> None:
    with session_scope(engine) as s:
        grid = s.execute(select(Grid).where(Grid.code == grid_code)).scalar_one()
        s.add(
            Resident(
                sender_id=sender,
                channel="wechat",
                community_id=grid.community_id,
                grid_id=grid.id,
                building=building,
            )
        )


def _closes(days: int = 3) -> str:
    return local_time(utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


async def _create(staff: WebClient, number: str, **changes: str):
    page = await staff.get(f"/consultations/new?ticket={number}")
    assert page.status == 200, await page.text()
    form = {
        "csrf_token": csrf_from(await page.text()),
        "ticket": number,
        "question": "东门外划错时停车位，大家同意吗？",
        "options": "同意\n不同意\n",
        "closes_at": _closes(),
        "scope": "grid",
        "building": "",
        **changes,
    }
    return await staff.post("/consultations/new", data=form, allow_redirects=False)


async def test_staff_consultation_and_resident_answer(
    client_factory: ClientFactory, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    _resident(web_engine, "oVoter1", "HPXC-01", 3)
    _resident(web_engine, "oFarAway", "YY-01", 2)
    number = add_ticket(web_engine, category="PROPOSAL", description="建议划错时停车位")
    staff = await client_factory("staff")
    ticket_page = await (await staff.get(f"/tickets/{number}")).text()
    assert f"/consultations/new?ticket={number}" in ticket_page
    created = await _create(staff, number)
    assert created.status == 303, await created.text()
    consultation_path = created.headers["Location"]
    consultation_id = int(consultation_path.rsplit("/", 1)[1])

    voter = await client_factory()
    await _sign_in(voter, fake_wechat_api, "oVoter1")
    page = await (await voter.get("/me")).text()
    assert "东门外划错时停车位" in page
    token = csrf_from(page)
    answered = await voter.post(
        f"/me/consultations/{consultation_id}",
        data={"csrf_token": token, "option": "1"},
        allow_redirects=False,
    )
    assert answered.status == 303
    again = await voter.post(
        f"/me/consultations/{consultation_id}",
        data={"csrf_token": token, "option": "0"},
        allow_redirects=False,
    )
    assert again.status == 409
    no_csrf = await voter.post(
        f"/me/consultations/{consultation_id}", data={"option": "0"}, allow_redirects=False
    )
    assert no_csrf.status == 403

    stranger = await client_factory()
    await _sign_in(stranger, fake_wechat_api, "oFarAway")
    assert "东门外划错时停车位" not in await (await stranger.get("/me")).text()
    refused = await stranger.post(
        f"/me/consultations/{consultation_id}",
        data={"csrf_token": token, "option": "0"},
        allow_redirects=False,
    )
    # the CSRF token belongs to another browser: refused before anything else
    assert refused.status == 403

    with session_scope(web_engine, readonly=True) as s:
        votes = s.execute(select(ConsultationVote.voter, ConsultationVote.option)).all()
        assert votes == [("oVoter1", 1)]

    detail = await (await staff.get(consultation_path)).text()
    assert "不同意" in detail
    closed = await staff.post(
        f"{consultation_path}/close",
        data={"csrf_token": csrf_from(detail), "decision": "多数不同意，暂不划线"},
        allow_redirects=False,
    )
    assert closed.status == 303
    page = await (await voter.get("/me")).text()
    assert "多数不同意，暂不划线" in page and "不同意 1票" in page


async def test_stranger_cannot_answer_another_grids_consultation(
    client_factory: ClientFactory, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    _resident(web_engine, "oFarAway", "YY-01", 2)
    add_ticket(web_engine, sender_id="oFarAway", description="我自己的事")  # a form on /me
    number = add_ticket(web_engine, category="PROPOSAL", description="建议划错时停车位")
    staff = await client_factory("staff")
    created = await _create(staff, number)
    consultation_id = int(created.headers["Location"].rsplit("/", 1)[1])
    stranger = await client_factory()
    await _sign_in(stranger, fake_wechat_api, "oFarAway")
    token = csrf_from(await (await stranger.get("/me")).text())
    refused = await stranger.post(
        f"/me/consultations/{consultation_id}",
        data={"csrf_token": token, "option": "0"},
        allow_redirects=False,
    )
    assert refused.status == 404
    with session_scope(web_engine, readonly=True) as s:
        assert s.execute(select(ConsultationVote.id)).first() is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"options": "只有一个"}, "选项需要"),
        ({"closes_at": "not-a-time"}, "截止时间"),
        ({"closes_at": "2001-01-01T10:00"}, "十分钟以后"),
        ({"question": ""}, "问题"),
        ({"scope": "building", "building": "abc"}, "楼号"),
    ],
)
async def test_bad_staff_input_is_refused_with_the_problems(
    staff_client: WebClient, web_engine, changes: dict[str, str], problem: str
) -> None:
    number = add_ticket(web_engine, category="PROPOSAL", description="建议")
    response = await _create(staff_client, number, **changes)
    assert response.status == 400
    assert problem in await response.text()
    with session_scope(web_engine, readonly=True) as s:
        assert s.execute(select(Consultation.id)).first() is None


async def test_who_may_make_consultations(client_factory: ClientFactory, web_engine) -> None:
    proposal = add_ticket(web_engine, category="PROPOSAL", description="建议")
    heating = add_ticket(web_engine, category="HEATING")
    worker = await client_factory("worker")
    assert (await worker.get(f"/consultations/new?ticket={proposal}")).status == 403
    other_staff = await client_factory("other_staff")
    assert (await other_staff.get(f"/consultations/new?ticket={proposal}")).status == 404
    staff = await client_factory("staff")
    assert (await staff.get(f"/consultations/new?ticket={heating}")).status == 404
