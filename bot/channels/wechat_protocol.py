"""WeChat Official Account server-message protocol: parsing and building XML.

No Rasa imports; pure functions plus a dataclass, so the sender CLI, the channel and
the tests share one implementation of the wire format.

Incoming XML is parsed with defusedxml and DTDs forbidden outright: WeChat never
sends one, so any DTD (billion laughs, external entities) is a hostile body.
"""

from __future__ import annotations

import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import defusedxml
import defusedxml.ElementTree as DET

from bot.channels.wechat_crypto import (
    BadSignature,
    DecryptError,
    MalformedMessage,
    PayloadTooLarge,
    WeChatProtocolError,
    WXBizMsgCrypt,
)

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_REPLY_BYTES",
    "ELLIPSIS",
    "BadSignature",
    "DecryptError",
    "MalformedMessage",
    "PayloadTooLarge",
    "WeChatProtocolError",
    "IncomingMessage",
    "Location",
    "parse_message",
    "parse_encrypted_envelope",
    "parse_encrypted_reply",
    "build_text_reply",
    "build_encrypted_envelope",
    "build_message_xml",
    "cdata",
    "render_bot_message",
    "join_replies",
    "truncate_utf8",
    "new_nonce",
]

# Real WeChat messages are a few KB; 64 KB leaves room and bounds parser work.
MAX_BODY_BYTES = 64 * 1024
# WeChat's limit on a text reply's Content (bytes of UTF-8).
MAX_REPLY_BYTES = 2048
ELLIPSIS = "…"
REPLY_SEPARATOR = "\n\n"

# Characters XML 1.0 cannot carry at all (even in CDATA); a reply containing one
# would be rejected by WeChat as an invalid body.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    scale: int | None = None
    label: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "scale": self.scale,
            "label": self.label,
        }


@dataclass(frozen=True)
class IncomingMessage:
    """One message or event as WeChat's server posts it (fields named as in the docs)."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    msg_id: str | None = None
    content: str | None = None
    recognition: str | None = None
    pic_url: str | None = None
    media_id: str | None = None
    format: str | None = None
    thumb_media_id: str | None = None
    location: Location | None = None
    title: str | None = None
    description: str | None = None
    url: str | None = None
    event: str | None = None
    event_key: str | None = None
    ticket: str | None = None

    @property
    def is_event(self) -> bool:
        return self.msg_type == "event"

    @property
    def dedup_key(self) -> str:
        """MsgId for messages; events have none, so FromUserName + CreateTime (+ Event)."""
        if self.msg_id and not self.is_event:
            return self.msg_id
        return f"{self.from_user}:{self.create_time}:{self.event or ''}"

    def as_metadata(self) -> dict[str, Any]:
        """The fields actions may want, without the Nones (goes into UserMessage metadata)."""
        data: dict[str, Any] = {
            "msg_id": self.msg_id,
            "dedup_key": self.dedup_key,
            "msg_type": self.msg_type,
            "to_user": self.to_user,
            "from_user": self.from_user,
            "create_time": self.create_time,
            "content": self.content,
            "recognition": self.recognition,
            "pic_url": self.pic_url,
            "media_id": self.media_id,
            "format": self.format,
            "thumb_media_id": self.thumb_media_id,
            "location": self.location.as_dict() if self.location else None,
            "title": self.title,
            "description": self.description,
            "url": self.url,
            "event": self.event,
            "event_key": self.event_key,
        }
        return {k: v for k, v in data.items() if v is not None}


# -- parsing ------------------------------------------------------------------------------

# Everything a hostile or broken body can make the parser raise. Anything else would be
# a bug of ours, so it is deliberately not caught here (the property tests check this).
_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    ET.ParseError,
    defusedxml.DefusedXmlException,
    ValueError,  # includes UnicodeError and defusedxml's DTDForbidden etc.
    LookupError,  # unknown encoding in an XML declaration
    RecursionError,
)


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")


def _parse_root(body: bytes | str) -> ET.Element:
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if not isinstance(data, bytes | bytearray):
        raise MalformedMessage("body must be bytes")
    _check_size(bytes(data))
    try:
        root = DET.fromstring(bytes(data), forbid_dtd=True, forbid_entities=True)
    except _PARSE_ERRORS as exc:
        raise MalformedMessage(f"not well-formed XML: {type(exc).__name__}") from exc
    if root.tag != "xml":
        raise MalformedMessage("root element is not <xml>")
    return root


def _fields(root: ET.Element) -> dict[str, str]:
    """Direct children as tag -> text (WeChat messages are flat)."""
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str) and child.tag not in fields:
            fields[child.tag] = (child.text or "").strip()
    return fields


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not value:
        raise MalformedMessage(f"missing {name}")
    return value


def _optional(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    return value if value else None


def _float(fields: Mapping[str, str], name: str) -> float:
    raw = _required(fields, name)
    try:
        value = float(raw)
    except ValueError as exc:
        raise MalformedMessage(f"{name} is not a number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise MalformedMessage(f"{name} is not a finite number")
    return value


def _int_or_none(fields: Mapping[str, str], name: str) -> int | None:
    raw = _optional(fields, name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise MalformedMessage(f"{name} is not an integer") from exc


def parse_message(body: bytes | str) -> IncomingMessage:
    """Parse a plaintext message body; MalformedMessage / PayloadTooLarge on bad input."""
    fields = _fields(_parse_root(body))
    to_user = _required(fields, "ToUserName")
    from_user = _required(fields, "FromUserName")
    msg_type = _required(fields, "MsgType")
    create_time = _int_or_none(fields, "CreateTime")
    if create_time is None:
        raise MalformedMessage("missing CreateTime")

    msg_id = _optional(fields, "MsgId")
    if msg_id is not None and len(msg_id) > 64:
        raise MalformedMessage("MsgId too long")

    location: Location | None = None
    if msg_type == "location":
        latitude = _float(fields, "Location_X")
        longitude = _float(fields, "Location_Y")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise MalformedMessage("location out of range")
        location = Location(
            latitude=latitude,
            longitude=longitude,
            scale=_int_or_none(fields, "Scale"),
            label=_optional(fields, "Label"),
        )
    elif msg_type == "event" and (fields.get("Event") or "").upper() == "LOCATION":
        # The periodic location report of an account with location reporting enabled.
        if fields.get("Latitude") and fields.get("Longitude"):
            location = Location(
                latitude=_float(fields, "Latitude"), longitude=_float(fields, "Longitude")
            )

    return IncomingMessage(
        to_user=to_user,
        from_user=from_user,
        create_time=create_time,
        msg_type=msg_type,
        msg_id=msg_id,
        content=fields.get("Content") if msg_type == "text" else None,
        recognition=_optional(fields, "Recognition"),
        pic_url=_optional(fields, "PicUrl"),
        media_id=_optional(fields, "MediaId"),
        format=_optional(fields, "Format"),
        thumb_media_id=_optional(fields, "ThumbMediaId"),
        location=location,
        title=_optional(fields, "Title"),
        description=_optional(fields, "Description"),
        url=_optional(fields, "Url"),
        event=_optional(fields, "Event"),
        event_key=_optional(fields, "EventKey"),
        ticket=_optional(fields, "Ticket"),
    )


def parse_encrypted_envelope(body: bytes | str) -> tuple[str | None, str]:
    """Safe-mode body -> (ToUserName, Encrypt). MalformedMessage when Encrypt is missing."""
    fields = _fields(_parse_root(body))
    return _optional(fields, "ToUserName"), _required(fields, "Encrypt")


def parse_encrypted_reply(body: bytes | str, crypto: WXBizMsgCrypt) -> bytes:
    """Verify and decrypt a reply envelope (what WeChat's server does with our replies)."""
    fields = _fields(_parse_root(body))
    encrypt = _required(fields, "Encrypt")
    return crypto.verify_and_decrypt(
        fields.get("MsgSignature"), fields.get("TimeStamp"), fields.get("Nonce"), encrypt
    )


# -- building -------------------------------------------------------------------------------


def _xml_safe(text: str) -> str:
    # XML parsers turn CR and CRLF into LF anyway; doing it here keeps round trips exact.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _XML_INVALID.sub("", text)


def cdata(text: str) -> str:
    """CDATA section holding `text` exactly; `]]>` is split across two sections."""
    return "<![CDATA[" + _xml_safe(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_message_xml(fields: Sequence[tuple[str, str | int | float]]) -> str:
    """Flat WeChat XML: strings in CDATA, numbers bare (as WeChat's own messages)."""
    parts = ["<xml>"]
    for name, value in fields:
        if isinstance(value, str):
            parts.append(f"<{name}>{cdata(value)}</{name}>")
        else:
            parts.append(f"<{name}>{value}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


def build_text_reply(
    incoming: IncomingMessage, content: str, create_time: int | None = None
) -> str:
    """Passive text reply: To/From swapped relative to the incoming message."""
    return build_message_xml(
        [
            ("ToUserName", incoming.from_user),
            ("FromUserName", incoming.to_user),
            ("CreateTime", int(time.time()) if create_time is None else create_time),
            ("MsgType", "text"),
            ("Content", truncate_utf8(content, MAX_REPLY_BYTES)),
        ]
    )


def new_nonce() -> str:
    return str(secrets.randbelow(10**10)).zfill(10)


def build_encrypted_envelope(
    crypto: WXBizMsgCrypt,
    reply_xml: str,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> str:
    """Encrypt a reply and wrap it with its msg_signature, as WXBizMsgCrypt.EncryptMsg."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    encrypt = crypto.encrypt(reply_xml)
    signature = crypto.sign(timestamp, nonce, encrypt)
    return (
        "<xml>"
        f"<Encrypt>{cdata(encrypt)}</Encrypt>"
        f"<MsgSignature>{cdata(signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<Nonce>{cdata(nonce)}</Nonce>"
        "</xml>"
    )


# -- bot messages -> one text -------------------------------------------------------------


def render_bot_message(message: Mapping[str, Any]) -> str:
    """One Rasa bot message (CollectingOutputChannel dict) -> plain text for WeChat.

    WeChat text has no buttons: their titles become numbered lines, so the resident
    can answer with the number or the words. Images become their URL.
    """
    lines: list[str] = []
    text = message.get("text")
    if isinstance(text, str) and text.strip():
        lines.append(text.strip())
    buttons = message.get("buttons") or message.get("quick_replies") or []
    if isinstance(buttons, list):
        for index, button in enumerate(buttons, start=1):
            title = button.get("title") if isinstance(button, Mapping) else None
            if title:
                lines.append(f"{index}. {title}")
    for key in ("image", "attachment"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            lines.append(value.strip())
    custom = message.get("custom")
    if isinstance(custom, Mapping) and isinstance(custom.get("text"), str):
        lines.append(custom["text"].strip())
    return "\n".join(line for line in lines if line)


def truncate_utf8(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """Fit `text` in `limit` UTF-8 bytes; when cut, end on a line if one is near, plus …"""
    text = _xml_safe(text)
    if len(text.encode("utf-8")) <= limit:
        return text
    budget = limit - len(ELLIPSIS.encode("utf-8"))
    cut = text.encode("utf-8")[:budget].decode("utf-8", "ignore")
    # Prefer ending at a line break when it costs at most a quarter of the text.
    newline = cut.rfind("\n")
    if newline >= len(cut) * 3 // 4:
        cut = cut[:newline]
    return cut.rstrip() + ELLIPSIS


def join_replies(messages: Iterable[Mapping[str, Any] | str], limit: int = MAX_REPLY_BYTES) -> str:
    """All bot messages of one turn as one text (blank line between), within `limit`."""
    texts = []
    for message in messages:
        text = message if isinstance(message, str) else render_bot_message(message)
        if text.strip():
            texts.append(text.strip())
    return truncate_utf8(REPLY_SEPARATOR.join(texts), limit)
