"""Several Rasa servers behind a load balancer, one shared state (bot.coordination,
both engines): a WeChat retry reaching another server never reaches Rasa twice,
and the answer is delivered exactly once, passively or pushed."""

from __future__ import annotations

import asyncio

from bot.channels.wechat_exchanges import SharedExchanges
from bot.channels.wechat_sender import build_incoming_xml
from bot.coordination import SharedState
from tests.channels.conftest import USER, FakeRasa, ServerFactory
from tests.channels.test_wechat_channel import reply_content
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi


async def two_servers(
    wechat_server: ServerFactory, shared: SharedState, delay: float = 0.0, **config: object
) -> tuple:
    replies = [{"text": "同一个回答"}]
    a = await wechat_server(rasa=FakeRasa(delay=delay, replies=replies), shared=shared, **config)
    b = await wechat_server(rasa=FakeRasa(delay=delay, replies=replies), shared=shared, **config)
    return a, b


def rasa_calls(*servers: object) -> int:
    return sum(len(server.rasa.calls) for server in servers)  # type: ignore[attr-defined]


async def test_same_msg_id_at_the_same_instant_on_two_servers(
    wechat_server: ServerFactory, shared_state: SharedState
) -> None:
    a, b = await two_servers(wechat_server, shared_state, delay=0.3)
    xml = build_incoming_xml("暖气不热", user=USER, msg_id=4242)
    results = await asyncio.gather(a.post_signed(xml), b.post_signed(xml))
    assert rasa_calls(a, b) == 1
    assert [reply_content(body) for _, body in results] == ["同一个回答", "同一个回答"]
    # a late retry on either server: the same answer, still one call
    for server in (a, b):
        status, body = await server.post_signed(xml)
        assert status == 200 and reply_content(body) == "同一个回答"
    assert rasa_calls(a, b) == 1


async def test_retry_on_another_server_takes_the_late_answer_passively(
    wechat_server: ServerFactory, shared_state: SharedState, fake_wechat_api: FakeWeChatApi
) -> None:
    a, b = await two_servers(
        wechat_server,
        shared_state,
        delay=1.5,
        reply_deadline_seconds=1.0,
        appid=APPID,
        app_secret=APP_SECRET,
        api_base=fake_wechat_api.url,
    )
    xml = build_incoming_xml("x", user=USER, msg_id=4300)
    assert await a.post_signed(xml) == (200, "success")  # A gave up at 1.0 s
    status, body = await b.post_signed(xml)  # the retry reaches B, answer at 1.5 s
    assert status == 200 and reply_content(body) == "同一个回答"
    await asyncio.sleep(0.8)  # past the owner's grace: it must not push as well
    assert fake_wechat_api.sends == [] and rasa_calls(a, b) == 1


async def test_answer_nobody_waits_for_is_pushed_once(
    wechat_server: ServerFactory, shared_state: SharedState, fake_wechat_api: FakeWeChatApi
) -> None:
    a, b = await two_servers(
        wechat_server,
        shared_state,
        delay=0.6,
        reply_deadline_seconds=0.2,
        appid=APPID,
        app_secret=APP_SECRET,
        api_base=fake_wechat_api.url,
    )
    xml = build_incoming_xml("x", user=USER, msg_id=4400)
    assert await a.post_signed(xml) == (200, "success")
    assert await b.post_signed(xml) == (200, "success")  # B's retry also gives up
    await fake_wechat_api.wait_for_sends(1)
    await asyncio.sleep(0.8)
    assert len(fake_wechat_api.sends) == 1 and rasa_calls(a, b) == 1
    # a retry after the push: `success`, nothing more
    assert await b.post_signed(xml) == (200, "success")
    assert len(fake_wechat_api.sends) == 1


async def test_a_dead_servers_message_is_taken_over_by_the_retry(
    wechat_server: ServerFactory, shared_state: SharedState
) -> None:
    a, b = await two_servers(wechat_server, shared_state)
    # A server claimed the message and died (SIGKILL): its claim is never renewed.
    dead = SharedExchanges(shared_state, claim_ttl_seconds=0.3, instance="dead")
    assert dead.claim((USER, "4500"))
    xml = build_incoming_xml("暖气不热", user=USER, msg_id=4500)
    loop = asyncio.get_running_loop()
    began = loop.time()
    status, body = await b.post_signed(xml)  # waits, then takes over once it expired
    assert status == 200 and reply_content(body) == "同一个回答"
    assert rasa_calls(a, b) == 1 and loop.time() - began >= 0.25


async def test_a_retry_told_success_answers_if_the_holder_dies_unanswered(
    wechat_server: ServerFactory, shared_state: SharedState, fake_wechat_api: FakeWeChatApi
) -> None:
    """The retry on B gave up waiting (`success`: WeChat tries no more) while A still
    held the message; A died before answering. B answers it, pushed, once."""
    a, b = await two_servers(
        wechat_server,
        shared_state,
        reply_deadline_seconds=0.2,
        appid=APPID,
        app_secret=APP_SECRET,
        api_base=fake_wechat_api.url,
    )
    dead = SharedExchanges(shared_state, claim_ttl_seconds=0.8, instance="dead")
    assert dead.claim((USER, "4550"))
    xml = build_incoming_xml("是", user=USER, msg_id=4550)
    assert await b.post_signed(xml) == (200, "success")
    assert rasa_calls(a, b) == 0  # A's claim still stood
    await fake_wechat_api.wait_for_sends(1)
    await asyncio.sleep(0.8)
    assert [s["json"]["text"]["content"] for s in fake_wechat_api.sends] == ["同一个回答"]
    assert rasa_calls(a, b) == 1


async def test_a_retry_told_success_leaves_a_living_holders_answer_to_it(
    wechat_server: ServerFactory, shared_state: SharedState, fake_wechat_api: FakeWeChatApi
) -> None:
    a, b = await two_servers(
        wechat_server,
        shared_state,
        delay=1.2,
        reply_deadline_seconds=0.2,
        appid=APPID,
        app_secret=APP_SECRET,
        api_base=fake_wechat_api.url,
    )
    xml = build_incoming_xml("是", user=USER, msg_id=4560)
    assert await a.post_signed(xml) == (200, "success")
    assert await b.post_signed(xml) == (200, "success")
    await fake_wechat_api.wait_for_sends(1)
    await asyncio.sleep(1.5)  # B watched A's claim renewed, then the answer stored
    assert len(fake_wechat_api.sends) == 1 and rasa_calls(a, b) == 1


async def test_shared_state_down_means_each_server_answers_alone(
    wechat_server: ServerFactory,
) -> None:
    from bot.coordination.redis_engine import RedisState

    unreachable = RedisState("redis://127.0.0.1:9/0", socket_timeout=0.2)
    server = await wechat_server(shared=unreachable)
    status, body = await server.post_message("暖气不热", msg_id=4600)
    assert status == 200 and reply_content(body) == "好的"


async def test_a_flood_from_one_openid_does_not_starve_other_residents(
    wechat_server: ServerFactory,
) -> None:
    rasa = FakeRasa(delay=0.2)
    server = await wechat_server(rasa=rasa, reply_deadline_seconds=1.5, max_concurrent_turns=2)
    # 100 messages at once from one OpenID (a script, or a stuck client) ...
    flood = [
        asyncio.ensure_future(server.post_message(f"刷屏{n}", user="oFlood", msg_id=9000 + n))
        for n in range(100)
    ]
    await asyncio.sleep(0.1)
    # ... and another resident is still answered within WeChat's deadline
    status, body = await server.post_message("暖气不热", user="oOther", msg_id=9999)
    assert status == 200 and reply_content(body) == "好的"
    flooded = await asyncio.gather(*flood)
    assert all(status == 200 for status, _ in flooded)
    # beyond a few queued messages the flood got "busy" at once, costing Rasa nothing
    busy = [b for _, b in flooded if b != "success" and reply_content(b).startswith("系统忙")]
    flood_turns = len([m for m in rasa.calls if m.sender_id == "oFlood"])
    assert len(busy) >= 80 and flood_turns + len(busy) == 100


async def test_a_server_without_a_model_says_busy_and_fails_its_health_check(
    wechat_server: ServerFactory,
) -> None:
    """Rasa ignores messages, silently, until its model is loaded (started while the
    model server was down): the resident reads "busy", the balancer skips the server."""
    rasa = FakeRasa(ready=False)
    server = await wechat_server(rasa=rasa)
    status, body = await server.post_message("暖气不热", msg_id=4700)
    assert status == 200 and reply_content(body).startswith("系统忙")
    async with server.session.get(server.url + "/webhooks/wechat/") as health:
        assert health.status == 503
    assert rasa.calls == []
    rasa.ready = True  # the model arrived: the retry is processed
    status, body = await server.post_message("暖气不热", msg_id=4700)
    assert status == 200 and reply_content(body) == "好的"
    async with server.session.get(server.url + "/webhooks/wechat/") as health:
        assert health.status == 200
