"""Stand-in for WeChat's server: `python -m bot wechat-send "暖气不热" --user oTest123`.

Builds the XML exactly as WeChat's server posts it, signs it (and encrypts it in safe
mode), posts it to the webhook, then verifies and decrypts the passive reply the way
WeChat would and returns its text. A reply of `success` (or an empty body) means no
passive answer: a late answer, if any, goes through the customer-service API.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from typing import Any

import aiohttp

from bot.channels.wechat_crypto import WXBizMsgCrypt, compute_signature
from bot.channels.wechat_protocol import (
    MalformedMessage,
    build_message_xml,
    new_nonce,
    parse_encrypted_reply,
    parse_message,
)

DEFAULT_ACCOUNT = "gh_neighbourhood"  # ToUserName: the Official Account's original id
WEBHOOK_PATH = "/webhooks/wechat/webhook"


class SenderError(Exception):
    """The webhook answered with an error status or a reply WeChat would reject."""


def build_incoming_xml(
    text: str | None = None,
    *,
    user: str,
    to_user: str = DEFAULT_ACCOUNT,
    location: tuple[float, float, str] | None = None,
    image: str | None = None,
    event: str | None = None,
    event_key: str | None = None,
    voice: bool = False,
    msg_type: str | None = None,
    msg_id: int | None = None,
    create_time: int | None = None,
) -> str:
    """One message as WeChat's server writes it (field order as in WeChat's docs)."""
    create_time = int(time.time()) if create_time is None else create_time
    msg_id = msg_id if msg_id is not None else secrets.randbelow(2**63 - 1) + 1
    fields: list[tuple[str, str | int | float]] = [
        ("ToUserName", to_user),
        ("FromUserName", user),
        ("CreateTime", create_time),
    ]
    if event:
        fields += [("MsgType", "event"), ("Event", event)]
        if event_key is not None:
            fields.append(("EventKey", event_key))
        return build_message_xml(fields)
    if location is not None:
        lat, lon, label = location
        fields += [
            ("MsgType", "location"),
            ("Location_X", lat),
            ("Location_Y", lon),
            ("Scale", 15),
            ("Label", label),
        ]
    elif image is not None:
        media_id = "media_" + secrets.token_hex(8)
        fields += [("MsgType", "image"), ("PicUrl", image), ("MediaId", media_id)]
    elif voice:
        fields += [
            ("MsgType", "voice"),
            ("MediaId", "media_" + secrets.token_hex(8)),
            ("Format", "amr"),
        ]
        if text:
            fields.append(("Recognition", text))
    elif msg_type and msg_type != "text":
        # video, shortvideo, link, file...: enough fields to be recognisable.
        fields += [("MsgType", msg_type), ("MediaId", "media_" + secrets.token_hex(8))]
    else:
        fields += [("MsgType", "text"), ("Content", text or "")]
    fields.append(("MsgId", msg_id))
    return build_message_xml(fields)


def sign_request(
    plain_xml: str,
    *,
    token: str,
    user: str,
    crypto: WXBizMsgCrypt | None = None,
    to_user: str = DEFAULT_ACCOUNT,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], str]:
    """Query parameters and body WeChat's server would post for `plain_xml`."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or new_nonce()
    params = {
        "signature": compute_signature(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": user,
    }
    if crypto is None:
        return params, plain_xml
    encrypt = crypto.encrypt(plain_xml)
    params["encrypt_type"] = "aes"
    params["msg_signature"] = crypto.sign(timestamp, nonce, encrypt)
    body = build_message_xml([("ToUserName", to_user), ("Encrypt", encrypt)])
    return params, body


def decode_reply(body: bytes, crypto: WXBizMsgCrypt | None, user: str) -> str:
    """The text of a passive reply ('' for `success`/empty), checked like WeChat does."""
    stripped = body.strip()
    if stripped in (b"", b"success"):
        return ""
    try:
        if b"<Encrypt>" in stripped:
            if crypto is None:
                raise SenderError("encrypted reply but no aes key configured")
            stripped = parse_encrypted_reply(stripped, crypto)
        reply = parse_message(stripped)
    except MalformedMessage as exc:  # includes DecryptError
        raise SenderError(f"reply WeChat would reject: {exc}") from exc
    if reply.msg_type != "text":
        raise SenderError(f"unexpected reply MsgType {reply.msg_type!r}")
    if reply.to_user != user:
        raise SenderError(f"reply addressed to {reply.to_user!r}, not {user!r}")
    return reply.content or ""


def _settings() -> Any:
    from bot.settings import get_settings

    return get_settings()


async def send(
    text: str | None = None,
    *,
    user: str = "oTest123",
    url: str | None = None,
    location: tuple[float, float, str] | None = None,
    image: str | None = None,
    event: str | None = None,
    event_key: str | None = None,
    voice: bool = False,
    msg_type: str | None = None,
    msg_id: int | None = None,
    to_user: str = DEFAULT_ACCOUNT,
    token: str | None = None,
    appid: str | None = None,
    aes_key: str | None = None,
    safe_mode: bool | None = None,
    timeout_seconds: float = 15.0,
) -> str:
    """Post one message to the webhook like WeChat's server; the reply's text.

    Unset token/appid/aes_key/url come from bot.settings; safe mode follows the settings
    (appid and aes_key set) unless `safe_mode` says otherwise. Returns '' when the
    webhook answered `success`. Raises SenderError on an HTTP error or a bad reply.
    """
    wants_keys = safe_mode is not False and (appid is None or aes_key is None)
    settings = _settings() if (token is None or url is None or wants_keys) else None
    token = token if token is not None else settings.wechat_token
    if url is None:
        url = settings.rasa_url.rstrip("/") + WEBHOOK_PATH
    if safe_mode is not False:
        appid = appid if appid is not None else settings.wechat_appid
        aes_key = aes_key if aes_key is not None else settings.wechat_aes_key
    crypto = None
    if safe_mode is not False and appid and aes_key:
        crypto = WXBizMsgCrypt(token, aes_key, appid)
    elif safe_mode:
        raise SenderError("safe mode needs appid and aes_key")

    plain = build_incoming_xml(
        text,
        user=user,
        to_user=to_user,
        location=location,
        image=image,
        event=event,
        event_key=event_key,
        voice=voice,
        msg_type=msg_type,
        msg_id=msg_id,
    )
    params, body = sign_request(plain, token=token, user=user, crypto=crypto, to_user=to_user)
    timeout = aiohttp.ClientTimeout(total=timeout_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(
            url,
            params=params,
            data=body.encode("utf-8"),
            headers={"Content-Type": "text/xml; charset=utf-8"},
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise SenderError(f"HTTP {response.status}: {raw[:200]!r}")
    return decode_reply(raw, crypto, user)


# -- command line -------------------------------------------------------------------------


def _parse_location(value: str) -> tuple[float, float, str]:
    parts = value.split(",", 2)
    if len(parts) < 2:
        raise argparse.ArgumentTypeError("expected LAT,LON[,LABEL]")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise argparse.ArgumentTypeError("LAT and LON must be numbers") from exc
    return lat, lon, parts[2] if len(parts) == 3 else ""


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("text", nargs="?", default=None, help="message text (or voice text)")
    parser.add_argument("--user", default="oTest123", help="FromUserName (the OpenID)")
    parser.add_argument("--url", default=None, help="webhook URL (default: RASA_URL + path)")
    parser.add_argument("--location", type=_parse_location, metavar="LAT,LON,LABEL")
    parser.add_argument("--image", metavar="URL", help="send an image with this PicUrl")
    parser.add_argument("--event", help="send an event, e.g. subscribe")
    parser.add_argument("--event-key", help="EventKey of the event, e.g. qrscene_123")
    parser.add_argument(
        "--voice", action="store_true", help="send as voice; TEXT is the Recognition (if any)"
    )
    parser.add_argument("--type", dest="msg_type", help="another MsgType, e.g. video")
    parser.add_argument("--msg-id", type=int, help="MsgId (repeat one to simulate a retry)")
    parser.add_argument(
        "--plaintext", action="store_true", help="plaintext mode even if safe mode is set"
    )
    parser.set_defaults(handler=run)  # bot.cli dispatches on `handler`
    return parser


def run(args: argparse.Namespace) -> int:
    """Run `wechat-send`: print the reply text; exit 1 on errors."""
    if not any([args.text, args.location, args.image, args.event, args.voice, args.msg_type]):
        print("wechat-send: give a TEXT or --location/--image/--event/--voice", file=sys.stderr)
        return 2
    try:
        reply = asyncio.run(
            send(
                args.text,
                user=args.user,
                url=args.url,
                location=args.location,
                image=args.image,
                event=args.event,
                event_key=args.event_key,
                voice=args.voice,
                msg_type=args.msg_type,
                msg_id=args.msg_id,
                safe_mode=False if args.plaintext else None,
            )
        )
    except (SenderError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        print(f"wechat-send: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if reply:
        print(reply)
    else:
        print(
            "(success: no passive reply; a late answer goes through the customer-service API)",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = configure_parser(argparse.ArgumentParser(prog="wechat-send"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
