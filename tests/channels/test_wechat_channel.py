"""The WeChat input channel on a real Sanic server, with a fake Rasa and a fake WeChat API."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
from rasa.shared.nlu.training_data.message import Message

from bot.channels import wechat_sender
from bot.channels.wechat import WeChatConfig, WeChatInput, rasa_text_for
from bot.channels.wechat_crypto import compute_signature
from bot.channels.wechat_protocol import parse_encrypted_reply, parse_message
from bot.channels.wechat_sender import DEFAULT_ACCOUNT, build_incoming_xml, sign_request
from bot.settings import load_settings
from tests.channels.conftest import AES_KEY, TOKEN, USER, FakeRasa, ServerFactory
from tests.channels.test_wechat_protocol import HOSTILE
from tests.fakes import APP_SECRET, APPID, FakeWeChatApi

SAFE = {"appid": APPID, "aes_key": AES_KEY}


def reply_content(body: str) -> str:
    root = ET.fromstring(body)
    assert root.findtext("MsgType") == "text"
    return root.findtext("Content") or ""


def only_call(rasa: FakeRasa) -> UserMessage:
    assert len(rasa.calls) == 1, rasa.calls
    return rasa.calls[0]


# -- URL verification ----------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, SAFE], ids=["plaintext", "safe"])
async def test_get_verification(wechat_server: ServerFactory, config: dict[str, str]) -> None:
    server = await wechat_server(**config)
    params = {
        "signature": compute_signature(TOKEN, "1714036504", "1514711492"),
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "8403837735398425815",
    }
    async with server.session.get(server.webhook, params=params) as resp:
        assert resp.status == 200
        assert await resp.text() == "8403837735398425815"
    for bad in [{"signature": "0" * 40}, {"timestamp": "1"}, {"signature": ""}]:
        async with server.session.get(server.webhook, params={**params, **bad}) as resp:
            assert resp.status == 403
            assert "8403837735398425815" not in await resp.text()
    async with server.session.get(server.webhook) as resp:
        assert resp.status == 403


async def test_published_token_example(wechat_server: ServerFactory) -> None:
    server = await wechat_server(token="AAAAA")
    params = {
        "signature": "f464b24fc39322e44b38aa78f5edd27bd1441696",
        "timestamp": "1714036504",
        "nonce": "1514711492",
        "echostr": "hello",
    }
    async with server.session.get(server.webhook, params=params) as resp:
        assert (resp.status, await resp.text()) == (200, "hello")


# -- refusals ------------------------------------------------------------------------------


async def test_too_large_body_is_413(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    xml = build_incoming_xml("x" * 70_000, user=USER)
    status, _ = await server.post_signed(xml)
    assert status == 413
    assert server.rasa.calls == []


async def test_bad_signature_is_403(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    xml = build_incoming_xml("暖气不热", user=USER)
    params = server.signed_params()
    params["signature"] = "0" * 40
    assert (await server.post_raw(xml, params))[0] == 403
    assert (await server.post_raw(xml, {}))[0] == 403
    other_token = sign_request(xml, token="other", user=USER)[0]
    assert (await server.post_raw(xml, other_token))[0] == 403
    assert server.rasa.calls == []


@pytest.mark.parametrize("body", [b"", b"hello", b"<xml><ToUserName>a</ToUserName></xml>"])
async def test_malformed_is_400(wechat_server: ServerFactory, body: bytes) -> None:
    server = await wechat_server()
    assert (await server.post_signed(body))[0] == 400
    assert server.rasa.calls == []


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_xml_is_400_without_expansion(
    wechat_server: ServerFactory, name: str
) -> None:
    server = await wechat_server()
    status, body = await server.post_signed(HOSTILE[name])
    assert status == 400
    assert "lol" not in body and "root:" not in body
    assert server.rasa.calls == []


async def test_unsigned_body_is_not_parsed(wechat_server: ServerFactory) -> None:
    # Authentication comes first: an unsigned hostile body gets 403, not 400.
    server = await wechat_server()
    assert (await server.post_raw(HOSTILE["billion_laughs"], {}))[0] == 403


async def test_failing_assistant_says_busy_and_server_keeps_serving(
    wechat_server: ServerFactory,
) -> None:
    server = await wechat_server(rasa=FakeRasa(fail=True))
    status, body = await server.post_message("暖气不热")
    assert status == 200 and reply_content(body) == "系统忙，请稍后再发一次。"
    server.rasa.fail = False
    status, body = await server.post_message("暖气还是不热")
    assert status == 200 and reply_content(body) == "好的"


async def test_unexpected_error_never_500(
    wechat_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await wechat_server()

    def boom(*_a: Any, **_k: Any) -> str:
        raise KeyError("bug")

    monkeypatch.setattr("bot.channels.wechat.build_text_reply", boom)
    status, body = await server.post_message("hi")
    assert (status, body) == (200, "success")
    assert "Traceback" not in body


# -- message types -> UserMessage ------------------------------------------------------------


async def test_text_message(wechat_server: ServerFactory) -> None:
    server = await wechat_server(rasa=FakeRasa(replies=[{"text": "您好，收到"}]))
    status, body = await server.post_message("暖气不热", msg_id=6999999999999999999)
    assert status == 200
    message = only_call(server.rasa)
    assert message.text == "暖气不热"
    assert message.sender_id == USER
    assert message.input_channel == "wechat"
    assert message.message_id == "6999999999999999999"
    meta = message.metadata["wechat"]
    assert meta["msg_id"] == "6999999999999999999"
    assert meta["msg_type"] == "text"
    assert meta["to_user"] == DEFAULT_ACCOUNT
    assert meta["from_user"] == USER
    assert meta["encrypted"] is False
    assert isinstance(meta["create_time"], int)
    json.dumps(message.metadata)  # goes into the tracker store

    root = ET.fromstring(body)
    assert root.findtext("ToUserName") == USER
    assert root.findtext("FromUserName") == DEFAULT_ACCOUNT
    assert root.findtext("MsgType") == "text"
    assert root.findtext("Content") == "您好，收到"
    assert int(root.findtext("CreateTime") or "0") > 1_600_000_000
    assert "<![CDATA[您好，收到]]>" in body


async def test_typed_intent_trigger_is_neutralised(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    await server.post_message('/share_location{"latitude": 0}')
    assert only_call(server.rasa).text == '／share_location{"latitude": 0}'


async def test_intent_triggers_allowed_when_configured(wechat_server: ServerFactory) -> None:
    server = await wechat_server(allow_intent_triggers=True)
    await server.post_message("/greet")
    assert only_call(server.rasa).text == "/greet"


async def test_voice_with_recognition(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    await server.post_message("楼道灯坏了", voice=True)
    message = only_call(server.rasa)
    assert message.text == "楼道灯坏了"
    assert message.metadata["wechat"]["recognition"] == "楼道灯坏了"
    assert message.metadata["wechat"]["msg_type"] == "voice"


async def test_voice_without_recognition(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    await server.post_message(None, voice=True)
    assert only_call(server.rasa).text == "/voice_unrecognised"


async def test_location(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    await server.post_message(location=(36.6512, 117.1201, '历下区"泉城路"1号'))
    message = only_call(server.rasa)
    assert message.text.startswith("/share_location{")
    assert message.metadata["wechat"]["location"] == {
        "latitude": 36.6512,
        "longitude": 117.1201,
        "scale": 15,
        "label": '历下区"泉城路"1号',
    }
    # Rasa's own parser reads intent and entities from the trigger text.
    parsed = YAMLStoryReader.unpack_regex_message(Message({"text": message.text}))
    assert parsed.get("intent")["name"] == "share_location"
    entities = {e["entity"]: e["value"] for e in parsed.get("entities")}
    assert entities == {"latitude": 36.6512, "longitude": 117.1201, "label": '历下区"泉城路"1号'}


async def test_image(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    await server.post_message(image="http://mmbiz.qpic.cn/photo.jpg")
    message = only_call(server.rasa)
    assert message.text == "/share_photo"
    meta = message.metadata["wechat"]
    assert meta["pic_url"] == "http://mmbiz.qpic.cn/photo.jpg"
    assert meta["media_id"].startswith("media_")


async def test_subscribe(wechat_server: ServerFactory) -> None:
    server = await wechat_server(rasa=FakeRasa(replies=[{"text": "欢迎关注"}]))
    status, body = await server.post_message(event="subscribe", event_key="qrscene_42")
    message = only_call(server.rasa)
    assert message.text == "/greet"
    assert message.metadata["wechat"]["event_key"] == "qrscene_42"
    assert message.message_id.startswith(USER + ":")
    assert reply_content(body) == "欢迎关注"


@pytest.mark.parametrize("event", ["unsubscribe", "LOCATION", "VIEW"])
async def test_silent_events(wechat_server: ServerFactory, event: str) -> None:
    server = await wechat_server()
    assert await server.post_message(event=event) == (200, "success")
    assert server.rasa.calls == []


@pytest.mark.parametrize("msg_type", ["video", "shortvideo", "link", "file"])
async def test_unsupported_types(wechat_server: ServerFactory, msg_type: str) -> None:
    server = await wechat_server()
    await server.post_message(msg_type=msg_type)
    assert only_call(server.rasa).text == "/unsupported_message"


@pytest.mark.parametrize("event", ["CLICK", "SCAN"])
async def test_other_events_are_unsupported(wechat_server: ServerFactory, event: str) -> None:
    server = await wechat_server()
    await server.post_message(event=event, event_key="KEY")
    assert only_call(server.rasa).text == "/unsupported_message"


def test_rasa_text_mapping_without_server() -> None:
    def msg(**fields: Any) -> Any:
        return parse_message(build_incoming_xml(user="o1", **fields))

    assert rasa_text_for(msg(text="你好")) == "你好"
    assert rasa_text_for(msg(text="  ")) == "/unsupported_message"
    assert rasa_text_for(msg(event="unsubscribe")) is None
    assert rasa_text_for(msg(event="subscribe")) == "/greet"


# -- replies ---------------------------------------------------------------------------------


async def test_several_messages_buttons_and_image_in_one_reply(
    wechat_server: ServerFactory,
) -> None:
    replies = [
        {"text": "收到，您说的是暖气的事。"},
        {
            "text": "请问是哪栋楼？",
            "buttons": [{"title": "1号楼", "payload": "/x"}, {"title": "2号楼"}],
        },
        {"image": "https://example.org/map.png"},
    ]
    server = await wechat_server(rasa=FakeRasa(replies=replies))
    _, body = await server.post_message("暖气不热")
    assert reply_content(body) == (
        "收到，您说的是暖气的事。\n\n请问是哪栋楼？\n1. 1号楼\n2. 2号楼\n\nhttps://example.org/map.png"
    )


async def test_nothing_to_say_is_success(wechat_server: ServerFactory) -> None:
    server = await wechat_server(rasa=FakeRasa(replies=[]))
    assert await server.post_message("嗯") == (200, "success")


async def test_long_reply_truncated(wechat_server: ServerFactory) -> None:
    server = await wechat_server(rasa=FakeRasa(replies=[{"text": "很长" * 2000}]))
    _, body = await server.post_message("x")
    content = reply_content(body)
    assert len(content.encode()) <= 2048 and content.endswith("…")


async def test_cdata_terminator_in_bot_text(wechat_server: ServerFactory) -> None:
    server = await wechat_server(rasa=FakeRasa(replies=[{"text": "a]]>b<c>&"}]))
    _, body = await server.post_message("x")
    assert reply_content(body) == "a]]>b<c>&"


# -- safe mode ------------------------------------------------------------------------------


async def test_safe_mode_round_trip(wechat_server: ServerFactory) -> None:
    server = await wechat_server(rasa=FakeRasa(replies=[{"text": "已收到，马上派人"}]), **SAFE)
    status, body = await server.post_message("暖气不热")
    assert status == 200
    assert "<Encrypt>" in body and "已收到" not in body  # nothing in the clear
    assert server.crypto is not None
    plain = parse_encrypted_reply(body, server.crypto)
    reply = parse_message(plain)
    assert (reply.to_user, reply.from_user, reply.content) == (
        USER,
        DEFAULT_ACCOUNT,
        "已收到，马上派人",
    )
    message = only_call(server.rasa)
    assert message.text == "暖气不热" and message.metadata["wechat"]["encrypted"] is True


async def test_safe_mode_bad_msg_signature_is_403(wechat_server: ServerFactory) -> None:
    server = await wechat_server(**SAFE)
    xml = build_incoming_xml("x", user=USER)
    params, body = sign_request(xml, token=TOKEN, user=USER, crypto=server.crypto)
    assert (await server.post_raw(body, {**params, "msg_signature": "0" * 40}))[0] == 403
    without = {k: v for k, v in params.items() if k != "msg_signature"}
    assert (await server.post_raw(body, without))[0] == 403
    assert (await server.post_raw(body, {**params, "signature": "0" * 40}))[0] == 403
    assert server.rasa.calls == []


async def test_safe_mode_undecryptable_is_400(wechat_server: ServerFactory) -> None:
    server = await wechat_server(**SAFE)
    from bot.channels.wechat_crypto import WXBizMsgCrypt

    other_app = WXBizMsgCrypt(TOKEN, AES_KEY, "wxanotherapp000000")
    xml = build_incoming_xml("x", user=USER)
    params, body = sign_request(xml, token=TOKEN, user=USER, crypto=other_app)
    assert (await server.post_raw(body, params))[0] == 400
    # Correctly signed garbage.
    garbage = "QUJD"
    params = server.signed_params()
    params.update(
        encrypt_type="aes",
        msg_signature=compute_signature(TOKEN, params["timestamp"], params["nonce"], garbage),
    )
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{garbage}</Encrypt></xml>"
    assert (await server.post_raw(body, params))[0] == 400
    assert server.rasa.calls == []


async def test_encrypted_message_without_safe_mode_is_400(wechat_server: ServerFactory) -> None:
    from bot.channels.wechat_crypto import WXBizMsgCrypt

    server = await wechat_server()
    xml = build_incoming_xml("x", user=USER)
    params, body = sign_request(
        xml, token=TOKEN, user=USER, crypto=WXBizMsgCrypt(TOKEN, AES_KEY, APPID)
    )
    assert (await server.post_raw(body, params))[0] == 400


async def test_safe_mode_refuses_plaintext_post(wechat_server: ServerFactory) -> None:
    # Someone who knows the token but not the AES key cannot speak as a resident.
    rasa = FakeRasa(replies=[{"text": "明文"}])
    server = await wechat_server(rasa=rasa, **SAFE)
    status, body = await server.post_message("撤销我的工单", encrypt=False)
    assert status == 403 and "明文" not in body
    assert rasa.calls == []


async def test_compatible_mode_accepts_plaintext_post(wechat_server: ServerFactory) -> None:
    # Compatible mode: a POST without encrypt_type is plaintext, checked by signature.
    server = await wechat_server(
        rasa=FakeRasa(replies=[{"text": "明文"}]), compat_mode=True, **SAFE
    )
    status, body = await server.post_message("x", encrypt=False)
    assert status == 200 and reply_content(body) == "明文"
    status, body = await server.post_message("x", encrypt=True)
    assert status == 200


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("false", False), ("", False), ("0", False), ("true", True), ("1", True), ("on", True)],
)
def test_compat_mode_from_credentials_strings(flag: str, expected: bool) -> None:
    # credentials.yml gives ${WECHAT_COMPAT_MODE} as a string ("" when unset)
    config = WeChatConfig.from_settings(
        load_settings(), token="t", appid=APPID, aes_key=AES_KEY, compat_mode=flag
    )
    assert config.safe_mode and config.compat_mode is expected


async def test_sender_cli_round_trip_in_safe_mode(
    wechat_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await wechat_server(
        rasa=FakeRasa(responder=lambda m: [{"text": f"你说：{m.text}"}]), **SAFE
    )
    text = await wechat_sender.send(
        "暖气不热", user="oTest123", url=server.webhook, token=TOKEN, appid=APPID, aes_key=AES_KEY
    )
    assert text == "你说：暖气不热"
    # `python -m bot wechat-send` (asyncio.run in a thread: this test's loop serves the
    # webhook).
    from bot.cli import build_parser

    args = build_parser().parse_args(
        ["wechat-send", "--url", server.webhook, "--location", "36.65,117.12,泉城广场"]
    )
    settings = type(
        "S",
        (),
        {
            "wechat_token": TOKEN,
            "wechat_appid": APPID,
            "wechat_aes_key": AES_KEY,
            "rasa_url": server.url,
        },
    )()
    original = wechat_sender._settings
    wechat_sender._settings = lambda: settings
    try:
        assert await asyncio.to_thread(args.handler, args) == 0
    finally:
        wechat_sender._settings = original
    assert capsys.readouterr().out.startswith("你说：/share_location{")


async def test_sender_reports_http_errors(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    with pytest.raises(wechat_sender.SenderError, match="403"):
        await wechat_sender.send("x", url=server.webhook, token="wrong", safe_mode=False)


# -- retries and the deadline ------------------------------------------------------------------


async def test_retries_call_rasa_once_and_get_the_same_answer(wechat_server: ServerFactory) -> None:
    server = await wechat_server(rasa=FakeRasa(delay=0.3, replies=[{"text": "同一个回答"}]))
    xml = build_incoming_xml("暖气不热", user=USER, msg_id=42)
    results = await asyncio.gather(*(server.post_signed(xml) for _ in range(3)))
    assert len(server.rasa.calls) == 1
    assert all(status == 200 and reply_content(body) == "同一个回答" for status, body in results)
    # A late retry after completion: still the same answer, still one call.
    status, body = await server.post_signed(xml)
    assert reply_content(body) == "同一个回答"
    assert len(server.rasa.calls) == 1
    # Another message is processed normally.
    await server.post_signed(build_incoming_xml("还有一件事", user=USER, msg_id=43))
    assert len(server.rasa.calls) == 2


async def test_same_msg_id_other_sender_is_not_a_retry(wechat_server: ServerFactory) -> None:
    server = await wechat_server()
    await server.post_signed(build_incoming_xml("a", user="oA", msg_id=7))
    await server.post_signed(build_incoming_xml("b", user="oB", msg_id=7))
    assert [m.sender_id for m in server.rasa.calls] == ["oA", "oB"]


async def test_slow_answer_goes_through_customer_service_api(
    wechat_server: ServerFactory, fake_wechat_api: FakeWeChatApi
) -> None:
    rasa = FakeRasa(delay=0.8, responder=lambda m: [{"text": f"迟到的回答：{m.text}"}])
    server = await wechat_server(
        rasa=rasa,
        reply_deadline_seconds=0.3,
        app_secret=APP_SECRET,
        api_base=fake_wechat_api.url,
        **SAFE,
    )
    xml = build_incoming_xml("暖气不热", user=USER, msg_id=100)
    status, body = await server.post_raw(
        *reversed(sign_request(xml, token=TOKEN, user=USER, crypto=server.crypto))
    )
    assert (status, body) == (200, "success")
    await fake_wechat_api.wait_for_sends(1)
    assert fake_wechat_api.sends[0]["json"] == {
        "touser": USER,
        "msgtype": "text",
        "text": {"content": "迟到的回答：暖气不热"},
    }
    # Once pushed, a retry gets `success`, without a second call or push.
    status, body = await server.post_raw(
        *reversed(sign_request(xml, token=TOKEN, user=USER, crypto=server.crypto))
    )
    assert (status, body) == (200, "success")
    assert len(rasa.calls) == 1 and len(fake_wechat_api.sends) == 1

    # A second slow message reuses the cached access token.
    await server.post_message("还是不热", msg_id=101)
    await fake_wechat_api.wait_for_sends(2)
    assert len(fake_wechat_api.token_requests) == 1
    assert fake_wechat_api.send_tokens == ["ACCESS_TOKEN_1", "ACCESS_TOKEN_1"]


async def test_retry_waiting_when_answer_arrives_gets_it_passively(
    wechat_server: ServerFactory, fake_wechat_api: FakeWeChatApi
) -> None:
    # First request gives up at 1.0 s; the retry arrives right after and waits until
    # ~2.0 s; the answer comes at 1.5 s (margins of 0.5 s for a slow machine).
    rasa = FakeRasa(delay=1.5, replies=[{"text": "第二次请求拿到"}])
    server = await wechat_server(
        rasa=rasa,
        reply_deadline_seconds=1.0,
        appid=APPID,
        app_secret=APP_SECRET,
        api_base=fake_wechat_api.url,
    )
    xml = build_incoming_xml("x", user=USER, msg_id=200)
    assert await server.post_signed(xml) == (200, "success")  # gave up at 1.0 s
    status, body = await server.post_signed(xml)  # WeChat's retry
    assert status == 200 and reply_content(body) == "第二次请求拿到"
    await asyncio.sleep(0.3)
    assert fake_wechat_api.sends == [] and len(rasa.calls) == 1


async def test_slow_answer_without_api_credentials_is_dropped_quietly(
    wechat_server: ServerFactory,
) -> None:
    server = await wechat_server(rasa=FakeRasa(delay=0.5), reply_deadline_seconds=0.2)
    assert await server.post_message("x") == (200, "success")
    await asyncio.sleep(0.5)
    assert await server.post_message("y", msg_id=5) == (200, "success")


async def test_push_refused_by_window_is_logged_not_raised(
    wechat_server: ServerFactory, fake_wechat_api: FakeWeChatApi, caplog: pytest.LogCaptureFixture
) -> None:
    fake_wechat_api.send_errcodes = [45015]
    server = await wechat_server(
        rasa=FakeRasa(delay=0.4),
        reply_deadline_seconds=0.1,
        appid=APPID,
        app_secret=APP_SECRET,
        api_base=fake_wechat_api.url,
    )
    assert await server.post_message("x") == (200, "success")
    for _ in range(50):
        if "outside_window" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "outside_window" in caplog.text


# -- configuration -------------------------------------------------------------------------------


def test_from_credentials_falls_back_to_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import settings as settings_module

    monkeypatch.setenv("WECHAT_TOKEN", "env-token")
    monkeypatch.setenv("WECHAT_APPID", APPID)
    monkeypatch.setenv("WECHAT_AES_KEY", AES_KEY)
    monkeypatch.setenv("WECHAT_API_BASE", "http://127.0.0.1:1/")
    settings_module.get_settings.cache_clear()
    try:
        channel = WeChatInput.from_credentials(
            {"token": "", "appid": None, "reply_deadline_seconds": "0.5"}
        )
        assert channel.config.token == "env-token"
        assert channel.config.appid == APPID and channel.crypto is not None
        assert channel.config.api_base == "http://127.0.0.1:1"
        assert channel.config.reply_deadline_seconds == 0.5
        explicit = WeChatInput.from_credentials({"token": "yml-token", "aes_key": ""})
        assert explicit.config.token == "yml-token"
        assert explicit.config.aes_key == AES_KEY  # empty credential -> settings
    finally:
        settings_module.get_settings.cache_clear()


def test_channel_name_and_routes() -> None:
    channel = WeChatInput(WeChatConfig(token="t"))
    assert WeChatInput.name() == "wechat" and channel.url_prefix() == "wechat"
    assert channel.crypto is None
    blueprint = channel.blueprint(FakeRasa())
    uris = {(route.uri, tuple(sorted(route.methods))) for route in blueprint._future_routes}
    assert ("/webhook", ("GET",)) in uris and ("/webhook", ("POST",)) in uris


def test_rasa_loads_the_channel_from_credentials_yml(tmp_path: Any) -> None:
    from rasa.core.run import create_http_input_channels

    path = tmp_path / "credentials.yml"
    path.write_text(
        "rest:\n"
        "bot.channels.wechat.WeChatInput:\n"
        '  token: "yml-token"\n'
        "  reply_deadline_seconds: 2.5\n",
        encoding="utf-8",
    )
    channels = create_http_input_channels(None, str(path))
    wechat = [c for c in channels if c.name() == "wechat"]
    assert len(wechat) == 1 and isinstance(wechat[0], WeChatInput)
    assert wechat[0].config.token == "yml-token"
    assert wechat[0].config.reply_deadline_seconds == 2.5
    # A key with no value at all: everything from the settings.
    path.write_text("bot.channels.wechat.WeChatInput:\n", encoding="utf-8")
    (channel,) = create_http_input_channels(None, str(path))
    assert channel.config.token  # the settings' (development) token


async def test_dropped_connection_before_answer_means_push(fake_wechat_api: FakeWeChatApi) -> None:
    # WeChat closed the connection (the handler is cancelled) before the answer came:
    # nobody is waiting any more, so the answer goes through the customer-service API.
    channel = WeChatInput(
        WeChatConfig(token=TOKEN, appid=APPID, app_secret=APP_SECRET, api_base=fake_wechat_api.url)
    )
    rasa = FakeRasa(delay=0.3, replies=[{"text": "推送"}])
    incoming = parse_message(build_incoming_xml("x", user=USER, msg_id=300))
    waiting = asyncio.ensure_future(channel.handle(incoming, rasa))
    await asyncio.sleep(0.1)
    waiting.cancel()
    try:
        await fake_wechat_api.wait_for_sends(1)
    finally:
        await channel.api.close()
    assert fake_wechat_api.sends[0]["json"]["text"]["content"] == "推送"
    assert len(rasa.calls) == 1


def test_wechat_send_registers_with_bot_cli() -> None:
    import bot.channels.wechat_cli  # noqa: F401 - registers the command
    from bot.cli import build_parser

    args = build_parser().parse_args(
        ["wechat-send", "暖气不热", "--user", "oTest123", "--location", "36.6,117.0,泉城广场"]
    )
    assert args.handler is wechat_sender.run
    assert (args.text, args.user, args.location) == (
        "暖气不热",
        "oTest123",
        (36.6, 117.0, "泉城广场"),
    )
