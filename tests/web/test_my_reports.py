"""The residents' "my reports" page over HTTP: WeChat web authorisation against the fake
WeChat API (tests/fakes.py), the resident's tickets, and their buttons."""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from bot.settings import Settings
from bot.store.db import session_scope
from bot.store.models import Ticket
from bot.tickets import service
from bot.web import resident_auth
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi
from tests.web.conftest import SECRET, ClientFactory, WebClient, add_ticket, csrf_from

PUBLIC = "https://nb.example.org"
ME = "oResident1"
NEIGHBOUR = "oResident2"


@pytest.fixture
def web_settings(web_settings: Settings, fake_wechat_api: FakeWeChatApi) -> Settings:
    return replace(
        web_settings,
        wechat_api_base=fake_wechat_api.url,
        wechat_appid=APPID,
        wechat_app_secret=APP_SECRET,
        web_base_url=PUBLIC,
        wechat_oauth_authorize_url=fake_wechat_api.url + "/connect/oauth2/authorize",
    )


async def _start(client: WebClient) -> str:
    """Open /me signed out; the state WeChat was given."""
    response = await client.get("/me", allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    return query["state"][0]


async def _sign_in(client: WebClient, fake: FakeWeChatApi, openid: str) -> None:
    state = await _start(client)
    code = fake.issue_oauth_code(openid)
    response = await client.get(f"/me/oauth?code={code}&state={state}", allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/me"


async def test_signed_out_resident_is_sent_to_wechat_authorisation(
    anon_client: WebClient, fake_wechat_api: FakeWeChatApi
) -> None:
    response = await anon_client.get("/me", allow_redirects=False)
    assert response.status == 302
    target = urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}" == fake_wechat_api.url
    assert target.fragment == "wechat_redirect"
    query = parse_qs(target.query)
    assert query["appid"] == [APPID]
    assert query["redirect_uri"] == [f"{PUBLIC}/me/oauth"]
    assert query["scope"] == ["snsapi_base"]
    assert query["state"][0] == response.cookies[resident_auth.STATE_COOKIE].value


async def test_resident_sees_only_their_own_tickets(
    anon_client: WebClient, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    mine = add_ticket(web_engine, sender_id=ME, description="三号楼暖气不热")
    theirs = add_ticket(web_engine, sender_id=NEIGHBOUR, description="邻居的事")
    await _sign_in(anon_client, fake_wechat_api, ME)
    exchange = fake_wechat_api.oauth_requests[-1]
    assert exchange["appid"] == APPID and exchange["secret"] == APP_SECRET
    page = await anon_client.get("/me")
    html = await page.text()
    assert page.status == 200
    assert mine in html and "三号楼暖气不热" in html and "待受理" in html
    assert theirs not in html and "邻居的事" not in html
    assert page.headers["Cache-Control"] == "no-store"


async def test_forged_code_signs_no_one_in(
    anon_client: WebClient, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    add_ticket(web_engine, sender_id=ME)
    state = await _start(anon_client)
    response = await anon_client.get(
        f"/me/oauth?code=FORGEDCODE123&state={state}", allow_redirects=False
    )
    assert response.status == 403
    assert resident_auth.RESIDENT_COOKIE not in response.cookies
    again = await anon_client.get("/me", allow_redirects=False)
    assert again.status == 302  # still signed out


async def test_reused_code_signs_no_one_in(
    client_factory: ClientFactory, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    number = add_ticket(web_engine, sender_id=ME)
    first = await client_factory()
    state = await _start(first)
    code = fake_wechat_api.issue_oauth_code(ME)
    ok = await first.get(f"/me/oauth?code={code}&state={state}", allow_redirects=False)
    assert ok.status == 303
    # someone who got hold of the code (a shared link, the browser history)
    other = await client_factory()
    other_state = await _start(other)
    replay = await other.get(f"/me/oauth?code={code}&state={other_state}", allow_redirects=False)
    assert replay.status == 403
    assert resident_auth.RESIDENT_COOKIE not in replay.cookies
    page = await other.get("/me", allow_redirects=False)
    assert page.status == 302
    assert number not in await page.text()
    # refused before asking WeChat: one exchange only
    assert [r["code"] for r in fake_wechat_api.oauth_requests] == [code]


async def test_reused_code_refused_by_wechat_in_another_process(
    client_factory: ClientFactory, fake_wechat_api: FakeWeChatApi, web_app
) -> None:
    code = fake_wechat_api.issue_oauth_code(ME)
    fake_wechat_api.oauth_used.add(code)  # exchanged by another web process
    client = await client_factory()
    state = await _start(client)
    response = await client.get(f"/me/oauth?code={code}&state={state}", allow_redirects=False)
    assert response.status == 403
    assert resident_auth.RESIDENT_COOKIE not in response.cookies


@pytest.mark.parametrize(
    "query",
    [
        "code={code}&state=not-the-state",  # a link planted by someone else
        "code={code}",
        "state={state}",
        "code=%3Cscript%3E&state={state}",
        "code=" + "A" * 300 + "&state={state}",
    ],
)
async def test_callback_without_matching_state_or_sane_code_is_refused(
    anon_client: WebClient, fake_wechat_api: FakeWeChatApi, query: str
) -> None:
    state = await _start(anon_client)
    code = fake_wechat_api.issue_oauth_code(ME)
    response = await anon_client.get(
        "/me/oauth?" + query.format(code=code, state=state), allow_redirects=False
    )
    assert response.status == 403
    assert resident_auth.RESIDENT_COOKIE not in response.cookies
    assert fake_wechat_api.oauth_requests == []  # the code was never exchanged


async def test_forged_session_cookie_counts_as_signed_out(
    anon_client: WebClient, web_engine
) -> None:
    number = add_ticket(web_engine, sender_id=NEIGHBOUR)
    good = resident_auth.session_value(SECRET, NEIGHBOUR, 4_000_000_000)
    forged = [
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        f"{NEIGHBOUR}.4000000000.",
        resident_auth.session_value("another-secret", NEIGHBOUR, 4_000_000_000),
        resident_auth.session_value(SECRET, NEIGHBOUR, 1_000_000_000),  # expired
        "garbage",
    ]
    for value in forged:
        anon_client.session.cookie_jar.update_cookies({resident_auth.RESIDENT_COOKIE: value})
        response = await anon_client.get("/me", allow_redirects=False)
        assert response.status == 302, value
        assert number not in await response.text()


def _status(engine, number: str) -> str:
    with session_scope(engine, readonly=True) as session:
        return session.execute(select(Ticket.status).where(Ticket.number == number)).scalar_one()


async def _post(client: WebClient, path: str, csrf: bool = True) -> object:
    form = {}
    if csrf:
        form["csrf_token"] = csrf_from(await (await client.get("/me")).text())
    return await client.post(path, data=form, allow_redirects=False)


async def test_withdraw_own_ticket(
    anon_client: WebClient, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    number = add_ticket(web_engine, sender_id=ME)
    add_ticket(web_engine, sender_id=ME)  # the page needs a form for the CSRF token
    await _sign_in(anon_client, fake_wechat_api, ME)
    refused = await _post(anon_client, f"/me/tickets/{number}/cancel", csrf=False)
    assert refused.status == 403
    assert _status(web_engine, number) == "open"
    done = await _post(anon_client, f"/me/tickets/{number}/cancel")
    assert done.status == 303
    assert _status(web_engine, number) == "cancelled"
    page = await (await anon_client.get("/me?done=cancel")).text()
    assert "已撤销该工单" in page
    with session_scope(web_engine, readonly=True) as session:
        ticket = service.get_ticket(session, number)
        assert ticket.events[-1].actor == f"resident:{ME}"
    # cancelled is final: the button is gone and a replayed form changes nothing
    again = await _post(anon_client, f"/me/tickets/{number}/cancel")
    assert again.status == 409


async def test_cannot_touch_a_neighbours_ticket(
    anon_client: WebClient, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    add_ticket(web_engine, sender_id=ME)
    theirs = add_ticket(web_engine, sender_id=NEIGHBOUR)
    await _sign_in(anon_client, fake_wechat_api, ME)
    for action in ("cancel", "satisfied", "unsatisfied", "reopen"):
        response = await _post(anon_client, f"/me/tickets/{theirs}/{action}")
        assert response.status == 404
    assert _status(web_engine, theirs) == "open"
    bogus = await _post(anon_client, f"/me/tickets/{theirs}/delete")
    assert bogus.status == 404


async def test_not_signed_in_cannot_post(anon_client: WebClient, web_engine) -> None:
    number = add_ticket(web_engine, sender_id=ME)
    token = await anon_client.csrf("/login")
    response = await anon_client.post(
        f"/me/tickets/{number}/cancel", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status == 403
    assert _status(web_engine, number) == "open"


def _resolve(engine, number: str, note: str) -> None:
    with session_scope(engine) as session:
        service.add_note(session, number, "worker:1:王芳", "明天上午上门查看")
        service.resolve(session, number, "worker:1:王芳", note=note)


@pytest.mark.parametrize(
    ("action", "status", "rating"),
    [("satisfied", "closed", "satisfied"), ("unsatisfied", "open", "unsatisfied")],
)
async def test_rate_a_resolved_ticket(
    anon_client: WebClient,
    fake_wechat_api: FakeWeChatApi,
    web_engine,
    action: str,
    status: str,
    rating: str,
) -> None:
    number = add_ticket(web_engine, sender_id=ME, photos=("https://img.example.org/a.jpg",))
    _resolve(web_engine, number, "已排气，室温恢复")
    await _sign_in(anon_client, fake_wechat_api, ME)
    html = await (await anon_client.get("/me")).text()
    assert "已处理，待确认" in html  # display.status_label
    assert "明天上午上门查看" in html and "已排气，室温恢复" in html and "王芳" in html
    assert 'src="https://img.example.org/a.jpg"' in html
    response = await _post(anon_client, f"/me/tickets/{number}/{action}")
    assert response.status == 303
    assert _status(web_engine, number) == status
    with session_scope(web_engine, readonly=True) as session:
        ticket = service.get_ticket(session, number)
        assert ticket.events[-1].data["rating"] == rating
        assert ticket.events[-1].type == ("closed" if status == "closed" else "reopened")
        assert ticket.events[-1].actor == f"resident:{ME}"


async def test_reopen_and_rating_need_a_resolved_ticket(
    anon_client: WebClient, fake_wechat_api: FakeWeChatApi, web_engine
) -> None:
    number = add_ticket(web_engine, sender_id=ME)
    await _sign_in(anon_client, fake_wechat_api, ME)
    html = await (await anon_client.get("/me")).text()
    assert f"/me/tickets/{number}/cancel" in html
    assert f"/me/tickets/{number}/satisfied" not in html
    for action in ("satisfied", "unsatisfied", "reopen"):
        response = await _post(anon_client, f"/me/tickets/{number}/{action}")
        assert response.status == 409
    assert _status(web_engine, number) == "open"
    _resolve(web_engine, number, "修好了")
    response = await _post(anon_client, f"/me/tickets/{number}/reopen")
    assert response.status == 303
    assert _status(web_engine, number) == "open"


async def test_photos_of_own_ticket_only(
    client_factory: ClientFactory, fake_wechat_api: FakeWeChatApi, web_engine, web_settings
) -> None:
    from bot.tickets import photos
    from tests.fakes import PNG_1PX

    number = add_ticket(web_engine, sender_id=ME)
    store = photos.PhotoStore(web_settings.photo_dir)
    with session_scope(web_engine) as session:
        ticket = service.get_ticket(session, number)
        photos.attach_stored(
            session, ticket, [store.save(PNG_1PX)], source="worker", actor="worker:1:王芳"
        )
    me = await client_factory()
    await _sign_in(me, fake_wechat_api, ME)
    html = await (await me.get("/me")).text()
    [path] = re.findall(rf'src="(/me/tickets/{number}/photos/\d+)"', html)
    image = await me.get(path)
    assert image.status == 200 and await image.read() == PNG_1PX
    neighbour = await client_factory()
    await _sign_in(neighbour, fake_wechat_api, NEIGHBOUR)
    assert (await neighbour.get(path, allow_redirects=False)).status == 404
    anonymous = await client_factory()
    assert (await anonymous.get(path, allow_redirects=False)).status == 302
