"""Parsing WeChat's message XML and building replies (no Rasa, no network)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.wechat_crypto import BadSignature, WXBizMsgCrypt
from bot.channels.wechat_protocol import (
    ELLIPSIS,
    MAX_BODY_BYTES,
    MAX_REPLY_BYTES,
    IncomingMessage,
    MalformedMessage,
    PayloadTooLarge,
    WeChatProtocolError,
    build_encrypted_envelope,
    build_text_reply,
    cdata,
    join_replies,
    parse_encrypted_envelope,
    parse_encrypted_reply,
    parse_message,
    render_bot_message,
    truncate_utf8,
)

# The examples of WeChat's "receiving ordinary messages / event pushes" documentation.
TEXT = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[text]]></MsgType>
  <Content><![CDATA[this is a test]]></Content>
  <MsgId>1234567890123456</MsgId>
  <MsgDataId>xxxx</MsgDataId>
  <Idx>xxxx</Idx>
</xml>"""

IMAGE = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[image]]></MsgType>
  <PicUrl><![CDATA[this is a url]]></PicUrl>
  <MediaId><![CDATA[media_id]]></MediaId>
  <MsgId>1234567890123456</MsgId>
</xml>"""

VOICE = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[voice]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <Format><![CDATA[Format]]></Format>
  <MsgId>1234567890123456</MsgId>
</xml>"""

VOICE_RECOGNISED = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[voice]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <Format><![CDATA[Format]]></Format>
  <Recognition><![CDATA[腾讯微信团队]]></Recognition>
  <MsgId>1234567890123456</MsgId>
</xml>"""

VIDEO = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[video]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId>
  <MsgId>1234567890123456</MsgId>
</xml>"""

SHORTVIDEO = VIDEO.replace("[video]", "[shortvideo]")

LOCATION = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[location]]></MsgType>
  <Location_X>23.134521</Location_X>
  <Location_Y>113.358803</Location_Y>
  <Scale>20</Scale>
  <Label><![CDATA[位置信息]]></Label>
  <MsgId>1234567890123456</MsgId>
</xml>"""

LINK = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[link]]></MsgType>
  <Title><![CDATA[公众平台官网链接]]></Title>
  <Description><![CDATA[公众平台官网链接]]></Description>
  <Url><![CDATA[url]]></Url>
  <MsgId>1234567890123456</MsgId>
</xml>"""

SUBSCRIBE = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
</xml>"""

SUBSCRIBE_QR = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
  <EventKey><![CDATA[qrscene_123123]]></EventKey>
  <Ticket><![CDATA[TICKET]]></Ticket>
</xml>"""

UNSUBSCRIBE = SUBSCRIBE.replace("[subscribe]", "[unsubscribe]")

SCAN = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[SCAN]]></Event>
  <EventKey><![CDATA[SCENE_VALUE]]></EventKey>
  <Ticket><![CDATA[TICKET]]></Ticket>
</xml>"""

LOCATION_EVENT = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[LOCATION]]></Event>
  <Latitude>23.137466</Latitude>
  <Longitude>113.352425</Longitude>
  <Precision>119.385040</Precision>
</xml>"""

CLICK = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[CLICK]]></Event>
  <EventKey><![CDATA[EVENTKEY]]></EventKey>
</xml>"""

VIEW = CLICK.replace("[CLICK]", "[VIEW]").replace("[EVENTKEY]", "[www.qq.com]")

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<xml><ToUserName>a</ToUserName></xml>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>x</Content></xml>"""

HOSTILE = {
    "billion_laughs": BILLION_LAUGHS,
    "external_entity": EXTERNAL_ENTITY,
    "parameter_entity": PARAMETER_ENTITY,
    "external_dtd": EXTERNAL_DTD,
}


# -- parsing -----------------------------------------------------------------------------


def test_text() -> None:
    m = parse_message(TEXT)
    assert (m.to_user, m.from_user, m.create_time) == ("toUser", "fromUser", 1348831860)
    assert (m.msg_type, m.content, m.msg_id) == ("text", "this is a test", "1234567890123456")
    assert m.dedup_key == "1234567890123456"


def test_text_as_bytes_with_chinese() -> None:
    body = TEXT.replace("this is a test", "暖气不热").encode("utf-8")
    assert parse_message(body).content == "暖气不热"


def test_image() -> None:
    m = parse_message(IMAGE)
    assert (m.msg_type, m.pic_url, m.media_id) == ("image", "this is a url", "media_id")


def test_voice_with_and_without_recognition() -> None:
    plain = parse_message(VOICE)
    assert (plain.msg_type, plain.recognition, plain.format) == ("voice", None, "Format")
    assert parse_message(VOICE_RECOGNISED).recognition == "腾讯微信团队"


@pytest.mark.parametrize("xml", [VIDEO, SHORTVIDEO])
def test_video(xml: str) -> None:
    m = parse_message(xml)
    assert m.msg_type in {"video", "shortvideo"}
    assert m.thumb_media_id == "thumb_media_id"


def test_location() -> None:
    m = parse_message(LOCATION)
    assert m.location is not None
    assert (m.location.latitude, m.location.longitude) == (23.134521, 113.358803)
    assert (m.location.scale, m.location.label) == (20, "位置信息")
    assert m.as_metadata()["location"] == {
        "latitude": 23.134521,
        "longitude": 113.358803,
        "scale": 20,
        "label": "位置信息",
    }


def test_link() -> None:
    m = parse_message(LINK)
    assert (m.msg_type, m.title, m.url) == ("link", "公众平台官网链接", "url")


def test_events() -> None:
    sub = parse_message(SUBSCRIBE)
    assert (sub.msg_type, sub.event, sub.event_key, sub.msg_id) == (
        "event",
        "subscribe",
        None,
        None,
    )
    assert sub.dedup_key == "FromUser:123456789:subscribe"
    qr = parse_message(SUBSCRIBE_QR)
    assert (qr.event_key, qr.ticket) == ("qrscene_123123", "TICKET")
    assert parse_message(UNSUBSCRIBE).dedup_key == "FromUser:123456789:unsubscribe"
    assert parse_message(SCAN).event == "SCAN"
    assert parse_message(CLICK).event_key == "EVENTKEY"
    assert parse_message(VIEW).event == "VIEW"
    loc = parse_message(LOCATION_EVENT)
    assert loc.location is not None and loc.location.latitude == 23.137466


def test_metadata_has_no_nones() -> None:
    meta = parse_message(TEXT).as_metadata()
    assert meta["msg_id"] == "1234567890123456"
    assert meta["to_user"] == "toUser" and meta["msg_type"] == "text"
    assert None not in meta.values()


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<xml>",
        b"<notxml><ToUserName>a</ToUserName></notxml>",
        TEXT.replace("<ToUserName><![CDATA[toUser]]></ToUserName>", "").encode(),
        TEXT.replace("<FromUserName><![CDATA[fromUser]]></FromUserName>", "").encode(),
        TEXT.replace("<MsgType><![CDATA[text]]></MsgType>", "").encode(),
        TEXT.replace("1348831860", "yesterday").encode(),
        TEXT.replace("<CreateTime>1348831860</CreateTime>", "").encode(),
        LOCATION.replace("23.134521", "north").encode(),
        LOCATION.replace("23.134521", "nan").encode(),
        LOCATION.replace("23.134521", "123.0").encode(),
        LOCATION.replace("<Scale>20</Scale>", "<Scale>big</Scale>").encode(),
        b"\xff\xfe<\x00x\x00",
        b'<?xml version="1.0" encoding="no-such-encoding"?><xml/>',
    ],
)
def test_malformed(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(body)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_xml_is_refused_without_expansion(name: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_message(HOSTILE[name])


def test_too_large() -> None:
    body = TEXT.replace("this is a test", "x" * MAX_BODY_BYTES).encode()
    with pytest.raises(PayloadTooLarge):
        parse_message(body)


def test_encrypted_envelope() -> None:
    body = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>"
    assert parse_encrypted_envelope(body) == ("gh_1", "abc=")
    with pytest.raises(MalformedMessage):
        parse_encrypted_envelope("<xml><ToUserName>gh_1</ToUserName></xml>")


# -- replies -----------------------------------------------------------------------------


def test_passive_text_reply_swaps_users() -> None:
    incoming = parse_message(TEXT)
    xml = build_text_reply(incoming, "您好，已收到", create_time=1700000000)
    root = ET.fromstring(xml)
    assert root.tag == "xml"
    assert [child.tag for child in root] == [
        "ToUserName",
        "FromUserName",
        "CreateTime",
        "MsgType",
        "Content",
    ]
    assert root.findtext("ToUserName") == "fromUser"
    assert root.findtext("FromUserName") == "toUser"
    assert root.findtext("CreateTime") == "1700000000"
    assert root.findtext("MsgType") == "text"
    assert root.findtext("Content") == "您好，已收到"
    assert "<Content><![CDATA[您好，已收到]]></Content>" in xml


@pytest.mark.parametrize(
    "content", ["a]]>b", "]]>", "]]]]>", "<![CDATA[x]]>", "]]><script>alert(1)</script>"]
)
def test_cdata_terminator_in_content_survives(content: str) -> None:
    xml = build_text_reply(parse_message(TEXT), content)
    assert ET.fromstring(xml).findtext("Content") == content
    assert parse_message(xml).content == content


def test_xml_invalid_characters_are_dropped() -> None:
    xml = build_text_reply(parse_message(TEXT), "a\x00b\x1bc\ufffed")
    assert ET.fromstring(xml).findtext("Content") == "abcd"


def test_cdata_helper() -> None:
    assert cdata("x") == "<![CDATA[x]]>"
    assert cdata("a]]>b") == "<![CDATA[a]]]]><![CDATA[>b]]>"


def test_encrypted_reply_round_trip_and_tamper() -> None:
    crypto = WXBizMsgCrypt("tok", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx123")
    reply = build_text_reply(parse_message(TEXT), "已派单")
    envelope = build_encrypted_envelope(crypto, reply, timestamp="1409304348", nonce="123")
    root = ET.fromstring(envelope)
    assert [child.tag for child in root] == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    assert root.findtext("TimeStamp") == "1409304348" and root.findtext("Nonce") == "123"
    assert root.findtext("MsgSignature") == crypto.sign(
        "1409304348", "123", root.findtext("Encrypt") or ""
    )
    assert parse_message(parse_encrypted_reply(envelope, crypto)).content == "已派单"
    with pytest.raises(BadSignature):
        parse_encrypted_reply(envelope.replace("1409304348", "1409304349"), crypto)


def test_render_bot_messages() -> None:
    assert render_bot_message({"text": "好的"}) == "好的"
    assert (
        render_bot_message(
            {
                "text": "您要反映哪类问题？",
                "buttons": [{"title": "暖气", "payload": "/x"}, {"title": "停车"}],
            }
        )
        == "您要反映哪类问题？\n1. 暖气\n2. 停车"
    )
    assert render_bot_message({"image": "https://example.org/a.png"}) == "https://example.org/a.png"
    assert render_bot_message({"custom": {"foo": 1}}) == ""


def test_join_replies() -> None:
    assert join_replies([{"text": "收到"}, {"text": "还有别的吗？"}]) == "收到\n\n还有别的吗？"
    assert join_replies([]) == ""
    assert join_replies([{"custom": {"x": 1}}, {"text": "  "}]) == ""
    assert join_replies(["a", {"text": "b"}]) == "a\n\nb"


def test_truncation_fits_limit_and_marks_cut() -> None:
    long = "暖" * 1000  # 3000 bytes
    out = join_replies([{"text": long}])
    assert len(out.encode("utf-8")) <= MAX_REPLY_BYTES
    assert out.endswith(ELLIPSIS)
    assert out[:-1] == "暖" * len(out[:-1])
    # A reply within the limit is untouched.
    exact = "a" * MAX_REPLY_BYTES
    assert truncate_utf8(exact) == exact


def test_truncation_prefers_line_break_near_the_end() -> None:
    text = "第一段" * 200 + "\n" + "第二段很长" * 200
    out = truncate_utf8(text, 2048)
    assert len(out.encode()) <= 2048 and out.endswith(ELLIPSIS)
    lines = (f"line {i:03d}\n" for i in range(400))
    out = truncate_utf8("".join(lines), 2048)
    assert re.search(r"line \d{3}…$", out)


def test_reply_limit_applies_to_passive_reply() -> None:
    xml = build_text_reply(parse_message(TEXT), "x" * 5000)
    content = ET.fromstring(xml).findtext("Content") or ""
    assert len(content.encode()) <= MAX_REPLY_BYTES


# -- properties ---------------------------------------------------------------------------

FIELD_NAMES = [
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "Recognition",
    "PicUrl",
    "MediaId",
    "Location_X",
    "Location_Y",
    "Scale",
    "Label",
    "Event",
    "EventKey",
    "Latitude",
    "Longitude",
    "Encrypt",
]
MSG_TYPES = ["text", "image", "voice", "video", "location", "link", "event", ""]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def wechat_like_xml(draw: st.DrawFn) -> bytes:
    """Flat <xml> documents with WeChat's field names and hostile-ish values."""
    value = st.one_of(
        st.text(max_size=30),
        st.integers().map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.sampled_from(MSG_TYPES),
    )
    fields = draw(st.lists(st.tuples(st.sampled_from(FIELD_NAMES), value), max_size=12))
    parts = []
    for name, raw in fields:
        if draw(st.booleans()):
            parts.append(f"<{name}>{cdata(raw)}</{name}>")
        else:
            parts.append(f"<{name}>{_escape(raw)}</{name}>")
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["<x><y/></x>", "<!-- c -->", "<?pi x?>", "&amp;"])))
    root = draw(st.sampled_from(["xml", "xml", "xml", "root"]))
    doc = f"<{root}>{''.join(parts)}</{root}>"
    return doc.encode(draw(st.sampled_from(["utf-8", "utf-8", "utf-16"])), "surrogatepass")


def _only_typed_errors(body: bytes | str) -> None:
    try:
        message = parse_message(body)
    except WeChatProtocolError:
        return
    assert isinstance(message, IncomingMessage)
    assert message.to_user and message.from_user and message.msg_type
    assert isinstance(message.create_time, int)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_typed_errors(body: bytes) -> None:
    _only_typed_errors(body)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=500))
def test_arbitrary_text_only_raises_typed_errors(body: str) -> None:
    _only_typed_errors(body)
    _only_typed_errors("<xml>" + body + "</xml>")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wechat_like_xml())
def test_arbitrary_xml_only_raises_typed_errors(body: bytes) -> None:
    _only_typed_errors(body)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=700))
def test_reply_round_trips_any_text(content: str) -> None:
    xml = build_text_reply(parse_message(TEXT), content)
    parsed = parse_message(xml.encode("utf-8"))
    expected = truncate_utf8(content).strip()
    assert (parsed.content or "") == expected
    assert len((parsed.content or "").encode("utf-8")) <= MAX_REPLY_BYTES


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=900), max_size=6))
def test_join_never_exceeds_limit(texts: list[str]) -> None:
    out = join_replies([{"text": t} for t in texts])
    assert len(out.encode("utf-8")) <= MAX_REPLY_BYTES
