"""Rasa input channel for a WeChat Official Account (公众号) server endpoint.

credentials.yml (every key optional):

    bot.channels.wechat.WeChatInput:
      token: "${WECHAT_TOKEN}"
      appid: ...                    # appid + aes_key set: safe (AES) mode
      aes_key: ...
      previous_aes_keys: ...        # comma-separated, tried after a key rotation
      app_secret: ...               # for customer-service pushes (late answers)
      api_base: ...                 # WeChat API base URL (tests: a fake on 127.0.0.1)
      reply_deadline_seconds: 4.0   # then `success`, and the answer is pushed later
      dedup_ttl_seconds: 60
      allow_intent_triggers: false  # true: residents' "/intent" texts reach Rasa as-is
      max_concurrent_turns: 4       # Rasa turns run at once; the others queue
      max_queued_per_sender: 3      # one resident's turns waiting; beyond: "busy"

A key missing or empty falls back to bot.settings (WECHAT_* environment variables);
since Rasa refuses an unset ${VAR}, leaving keys out is the safe way. Routes:
GET/POST /webhooks/wechat/webhook.

Non-text input reaches Rasa as intent triggers (see `rasa_text_for`); the WeChat fields
travel in `metadata["wechat"]`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.wechat_api import SendResult, WeChatApiClient
from bot.channels.wechat_crypto import WXBizMsgCrypt, signature_matches
from bot.channels.wechat_exchanges import (
    DEFAULT_TTL_SECONDS,
    Delivery,
    Exchange,
    ExchangeKey,
    ExchangeStore,
    InMemoryExchangeStore,
    SharedExchanges,
)
from bot.channels.wechat_protocol import (
    MAX_BODY_BYTES,
    BadSignature,
    IncomingMessage,
    MalformedMessage,
    PayloadTooLarge,
    build_encrypted_envelope,
    build_text_reply,
    join_replies,
    parse_encrypted_envelope,
    parse_message,
    render_bot_message,
)
from bot.coordination import SharedState, SharedStateUnavailable

logger = logging.getLogger(__name__)

CHANNEL_NAME = "wechat"
DEFAULT_REPLY_DEADLINE_SECONDS = 4.0  # WeChat waits 5 s; leave room for the network.
# Rasa runs NLU, policies and tracker writes in the event loop, so every turn in
# progress lengthens each loop iteration, and with it how late the deadline's timer
# fires and new requests are read. Unbounded, messages arriving faster than Rasa
# answers made every reply late (well past WeChat's 5 s, benchmarks/webhook_load.py);
# bounded, the loop stays responsive, and a message waiting for a slot gets `success`
# in time and its answer is pushed later.
DEFAULT_MAX_CONCURRENT_TURNS = 4
# A retry on another server than the one processing its message polls the shared
# state this often; the owner gives such a waiting retry this long to take the answer
# before pushing it.
REMOTE_POLL_SECONDS = 0.05
# One resident's turns run one at a time here (Rasa's lock store orders them anyway),
# waiting for their own turn before taking one of the shared slots: a flood from one
# OpenID then holds at most one slot, never all of them. Beyond this many of theirs
# waiting, a message is answered "busy" at once instead of queueing.
DEFAULT_MAX_QUEUED_PER_SENDER = 3
REMOTE_GRACE_SECONDS = 0.5
# A retry answered `success` while another server held its message checks this often
# whether that server is still alive (its claim renewed) until the answer exists.
ORPHAN_POLL_SECONDS = 0.5

# Intent triggers for input that is not text (the domain declares these intents).
INTENT_VOICE_UNRECOGNISED = "voice_unrecognised"
INTENT_SHARE_LOCATION = "share_location"
INTENT_SHARE_PHOTO = "share_photo"
INTENT_SUBSCRIBE = "greet"  # a new follower gets the welcome menu
INTENT_UNSUPPORTED = "unsupported_message"

# Events that are not something the resident said: no Rasa call, reply `success`.
# unsubscribe: nobody is listening any more. LOCATION: the periodic automatic location
# report. VIEW: a menu link was opened. *JOBFINISH: delivery receipts of our own sends.
SILENT_EVENTS = frozenset(
    {"unsubscribe", "location", "view", "templatesendjobfinish", "masssendjobfinish"}
)

# A resident typing "/something{...}" must not trigger intents with chosen entities;
# the full-width solidus keeps the text readable for NLU.
_FULLWIDTH_SOLIDUS = "／"

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class PlaintextRefused(BadSignature):
    """A plaintext message while the account is in safe mode (not compatible mode)."""


# News about a resident's tickets that WeChat did not let us push (bot.notify): given
# with the reply to their next message. OpenID -> texts, marked delivered once taken.
DeferredNotices = Callable[[str], Awaitable[list[str]]]


@dataclass(frozen=True)
class WeChatConfig:
    token: str
    appid: str | None = None
    aes_key: str | None = None
    previous_aes_keys: tuple[str, ...] = ()
    app_secret: str | None = None
    api_base: str = "https://api.weixin.qq.com"
    reply_deadline_seconds: float = DEFAULT_REPLY_DEADLINE_SECONDS
    dedup_ttl_seconds: float = DEFAULT_TTL_SECONDS
    allow_intent_triggers: bool = False
    # Safe mode refuses plaintext messages unless the account is in WeChat's
    # compatible mode (both forms arrive while switching over).
    compat_mode: bool = False
    max_concurrent_turns: int = DEFAULT_MAX_CONCURRENT_TURNS  # 0: no bound
    max_queued_per_sender: int = DEFAULT_MAX_QUEUED_PER_SENDER
    # menu button key -> what a click on it means (bot.channels.wechat_menu)
    menu_clicks: Mapping[str, str] = field(default_factory=dict)

    @property
    def safe_mode(self) -> bool:
        return bool(self.appid and self.aes_key)

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> WeChatConfig:
        """Settings of this process, with non-empty `overrides` taking precedence."""
        if settings is None:
            from bot.settings import get_settings

            settings = get_settings()
        previous = getattr(settings, "wechat_aes_key_previous", None)
        values: dict[str, Any] = {
            "token": settings.wechat_token,
            "appid": settings.wechat_appid,
            "aes_key": settings.wechat_aes_key,
            "previous_aes_keys": (previous,) if previous else (),
            "app_secret": settings.wechat_app_secret,
            "api_base": settings.wechat_api_base,
            "reply_deadline_seconds": getattr(
                settings, "wechat_reply_deadline_seconds", DEFAULT_REPLY_DEADLINE_SECONDS
            ),
            "compat_mode": getattr(settings, "wechat_compat_mode", False),
        }
        menu_path = getattr(settings, "wechat_menu_path", None)
        if menu_path is not None:
            from bot.channels.wechat_menu import click_texts

            values["menu_clicks"] = click_texts(menu_path)
        for name, value in overrides.items():
            if value is None or value == "" or value == ():
                continue
            values[name] = value
        return cls(**_coerce(values))


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    # credentials.yml values arrive as strings after ${VAR} substitution.
    out = dict(values)
    for name in ("reply_deadline_seconds", "dedup_ttl_seconds"):
        if name in out:
            out[name] = float(out[name])
    for name in ("max_concurrent_turns", "max_queued_per_sender"):
        if name in out:
            out[name] = int(out[name])
    for flag in ("allow_intent_triggers", "compat_mode"):
        if isinstance(out.get(flag), str):
            out[flag] = out[flag].strip().lower() in ("1", "true", "yes", "on")
    if isinstance(out.get("previous_aes_keys"), list):
        out["previous_aes_keys"] = tuple(str(k) for k in out["previous_aes_keys"] if k)
    if isinstance(out.get("previous_aes_keys"), str):
        out["previous_aes_keys"] = tuple(
            k.strip() for k in out["previous_aes_keys"].split(",") if k.strip()
        )
    for name in ("token", "appid", "aes_key", "app_secret", "api_base"):
        if out.get(name) is not None:
            out[name] = str(out[name])
    if out.get("api_base"):
        out["api_base"] = out["api_base"].rstrip("/")
    return out


def rasa_text_for(
    message: IncomingMessage,
    allow_intent_triggers: bool = False,
    menu_clicks: Mapping[str, str] | None = None,
) -> str | None:
    """What Rasa receives as the user's text; None for events processed silently.

    text -> Content; voice -> Recognition or /voice_unrecognised; location ->
    /share_location{"latitude", "longitude", "label"}; image -> /share_photo;
    subscribe -> /greet (the welcome menu); a menu CLICK -> the button's `says` text
    (`menu_clicks`); anything else -> /unsupported_message.
    """
    msg_type = message.msg_type.lower()
    if msg_type == "text":
        text = (message.content or "").strip()
        if not text:
            return f"/{INTENT_UNSUPPORTED}"
        return text if allow_intent_triggers else _neutralise_trigger(text)
    if msg_type == "voice":
        recognition = (message.recognition or "").strip()
        if not recognition:
            return f"/{INTENT_VOICE_UNRECOGNISED}"
        return _neutralise_trigger(recognition)
    if msg_type == "location" and message.location is not None:
        entities = {
            "latitude": message.location.latitude,
            "longitude": message.location.longitude,
            "label": message.location.label or "",
        }
        # Rasa parses "/intent{json}"; json.dumps escapes anything a label could hold.
        return f"/{INTENT_SHARE_LOCATION}" + json.dumps(entities, ensure_ascii=False)
    if msg_type == "image":
        return f"/{INTENT_SHARE_PHOTO}"
    if msg_type == "event":
        event = (message.event or "").lower()
        if event == "subscribe":
            return f"/{INTENT_SUBSCRIBE}"
        if event == "click" and message.event_key and message.event_key in (menu_clicks or {}):
            return _neutralise_trigger((menu_clicks or {})[message.event_key])
        if event in SILENT_EVENTS:
            return None
    return f"/{INTENT_UNSUPPORTED}"


def _neutralise_trigger(text: str) -> str:
    return _FULLWIDTH_SOLIDUS + text[1:] if text.startswith("/") else text


def wechat_metadata(message: IncomingMessage, encrypted: bool) -> dict[str, Any]:
    """metadata for the UserMessage: {"wechat": {...the message's fields...}}."""
    data = message.as_metadata()
    data["encrypted"] = encrypted
    return {"wechat": data}


class WeChatOutputChannel(OutputChannel):
    """Pushes bot messages through the customer-service API.

    Used by Rasa for messages not answering a request (reminders, external events via
    `trigger_intent`); each message costs one of the few sends the 48-h window allows.
    """

    def __init__(self, api: WeChatApiClient) -> None:
        self.api = api
        self.results: list[SendResult] = []

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        text = render_bot_message(message)
        if text:
            await self._send(recipient_id, text)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._send(recipient_id, text)

    async def _send(self, recipient_id: str, text: str) -> None:
        result = await self.api.send_text(recipient_id, join_replies([text]))
        self.results.append(result)
        if not result.ok:
            logger.warning(
                "wechat push to %s failed: %s %s", recipient_id, result.status, result.errcode
            )


class WeChatInput(InputChannel):
    """WeChat Official Account server messages, plaintext and safe mode."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WeChatInput:
        credentials = credentials or {}
        known = set(WeChatConfig.__dataclass_fields__)
        overrides = {k: v for k, v in credentials.items() if k in known}
        from bot.coordination import get_deployment_state, get_shared_state
        from bot.notify.outbox import pop_deferred_notices_from_store

        return cls(
            WeChatConfig.from_settings(**overrides),
            deferred_notices=pop_deferred_notices_from_store,
            shared=get_shared_state(),
            token_state=get_deployment_state(),
            busy_text=domain_reply("utter_busy"),
        )

    def __init__(
        self,
        config: WeChatConfig | None = None,
        *,
        api: WeChatApiClient | None = None,
        exchanges: ExchangeStore | None = None,
        deferred_notices: DeferredNotices | None = None,
        shared: SharedState | None = None,
        token_state: SharedState | None = None,
        busy_text: str = "",
    ) -> None:
        self.config = config or WeChatConfig.from_settings()
        self.deferred_notices = deferred_notices
        # What the resident reads when their message could not be processed (the
        # domain's utter_busy): honest, instead of silence.
        self.busy_text = busy_text
        # Exchanges of every Rasa server (bot.coordination); None: this process only.
        self.shared = (
            SharedExchanges(shared, ttl_seconds=self.config.dedup_ttl_seconds)
            if shared is not None
            else None
        )
        self.crypto: WXBizMsgCrypt | None = None
        if self.config.safe_mode:
            self.crypto = WXBizMsgCrypt(
                self.config.token,
                self.config.aes_key or "",
                self.config.appid or "",
                previous_aes_keys=self.config.previous_aes_keys,
            )
        # The access token is the deployment's, also without Redis (`make run`'s
        # web app and action server use the account too): `token_state`.
        self.api = api or WeChatApiClient(
            self.config.appid,
            self.config.app_secret,
            self.config.api_base,
            shared=token_state if token_state is not None else shared,
        )
        self.exchanges = exchanges or InMemoryExchangeStore(
            ttl_seconds=self.config.dedup_ttl_seconds
        )
        # Strong references: the loop keeps only weak ones to tasks.
        self._background: set[asyncio.Future[Any]] = set()
        self._turn_slots: asyncio.Semaphore | None = None  # created in the running loop
        # per resident: their turns in this process (running or waiting), and their lock
        self._sender_turns: dict[str, int] = {}
        self._sender_locks: dict[str, asyncio.Lock] = {}

    def get_output_channel(self) -> OutputChannel | None:
        return WeChatOutputChannel(self.api)

    # -- HTTP -------------------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        bp = Blueprint("wechat_webhook", __name__)

        @bp.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            # the load balancer's check: a server without a model yet gets no messages
            if not _agent_ready(request):
                return response.json({"status": "no model loaded"}, status=503)
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return self._verify_url(request)

        # stream=True: read the body ourselves, so an oversized one is cut off at 64 KB
        # instead of being buffered up to Sanic's 100 MB limit.
        @bp.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            try:
                return await self._receive(request, on_new_message)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - WeChat must never see a 500
                logger.exception("wechat webhook failed")
                return _success()

        @bp.listener("after_server_stop")
        async def close_api(*_: Any) -> None:
            await self.api.close()

        return bp

    def _verify_url(self, request: Request) -> HTTPResponse:
        args = request.args
        if not signature_matches(
            args.get("signature"), self.config.token, args.get("timestamp"), args.get("nonce")
        ):
            return response.text("forbidden", status=403)
        return response.text(args.get("echostr") or "")

    async def _receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        started = time.monotonic()
        try:
            body = await _read_body(request, MAX_BODY_BYTES)
            incoming, encrypted = self._open(request, body)
        except PayloadTooLarge:
            return response.text("payload too large", status=413)
        except BadSignature:
            logger.warning("wechat webhook: bad signature from %s", request.ip)
            return response.text("forbidden", status=403)
        except PlaintextRefused:
            logger.warning("wechat webhook: plaintext message in safe mode from %s", request.ip)
            return response.text("forbidden", status=403)
        except MalformedMessage as exc:
            logger.warning("wechat webhook: malformed body: %s", exc)
            return response.text("bad request", status=400)

        if _agent_ready(request):
            text = await self.handle(incoming, on_new_message, encrypted=encrypted, started=started)
        else:
            # Rasa ignores messages, silently, until its model is loaded (a server just
            # started while the model server was down): the resident is told, and the
            # retry may reach a server that has one.
            logger.warning("wechat: no model loaded yet: %s answered busy", incoming.from_user)
            text = self.busy_text
        if not text:
            return _success()
        reply = build_text_reply(incoming, text)
        if encrypted and self.crypto is not None:
            reply = build_encrypted_envelope(self.crypto, reply)
        return response.text(reply, content_type="application/xml; charset=utf-8")

    def _open(self, request: Request, body: bytes) -> tuple[IncomingMessage, bool]:
        """Check signatures and parse; returns the message and whether it was encrypted."""
        args = request.args
        timestamp, nonce = args.get("timestamp"), args.get("nonce")
        signature = args.get("signature")
        if args.get("encrypt_type", "").lower() == "aes":
            # WeChat sends both signatures; msg_signature is the one covering the body.
            if signature is not None and not signature_matches(
                signature, self.config.token, timestamp, nonce
            ):
                raise BadSignature("signature does not match")
            _, encrypt = parse_encrypted_envelope(body)
            if self.crypto is None:
                raise MalformedMessage("encrypted message but appid/aes_key not configured")
            plain = self.crypto.verify_and_decrypt(
                args.get("msg_signature"), timestamp, nonce, encrypt
            )
            return parse_message(plain), True
        # Plaintext (or compatible mode without encrypt_type): the query signature only.
        if not signature_matches(signature, self.config.token, timestamp, nonce):
            raise BadSignature("signature does not match")
        if self.config.safe_mode and not self.config.compat_mode:
            # In safe mode WeChat encrypts everything: a plaintext message is
            # someone who knows the token but not the AES key.
            raise PlaintextRefused("plaintext message in safe mode (not compatible mode)")
        return parse_message(body), False

    # -- messages -------------------------------------------------------------------------

    async def handle(
        self,
        incoming: IncomingMessage,
        on_new_message: OnNewMessage,
        *,
        encrypted: bool = False,
        started: float | None = None,
    ) -> str:
        """Process one incoming message; the passive reply text, '' for `success`.

        A retry of a message already in flight waits for the same processing.
        """
        started = time.monotonic() if started is None else started
        rasa_text = rasa_text_for(
            incoming, self.config.allow_intent_triggers, self.config.menu_clicks
        )
        if rasa_text is None:
            logger.debug("wechat %s event from %s: silent", incoming.event, incoming.from_user)
            return ""

        key = (incoming.from_user, incoming.dedup_key)
        while self.shared is not None and self.exchanges.get(key) is None:
            if self._claim(key):
                break  # this server processes it (no await since the local lookup)
            remote = await self._await_remote(key, started)
            if remote == "":
                # `success` told WeChat not to try again: should the server holding
                # the message die before answering, this one answers it (pushed)
                self._watch_holder(key, incoming, rasa_text, on_new_message, encrypted)
            if remote is not None:
                return remote
            # None: the server that had it is gone; the loop claims it here.

        exchange, created = self._exchange(key, incoming, rasa_text, on_new_message, encrypted)
        if not created:
            logger.info("wechat retry of %s from %s", incoming.dedup_key, incoming.from_user)

        if exchange.delivery is Delivery.PUSH:
            return ""
        remaining = self.config.reply_deadline_seconds - (time.monotonic() - started)
        exchange.waiters += 1
        try:
            if not exchange.task.done() and remaining > 0:
                # asyncio.wait, not wait_for: a timeout must not cancel Rasa's work.
                await asyncio.wait({exchange.task}, timeout=remaining)
            decision = exchange.decide()
        except asyncio.CancelledError:
            exchange.waiters -= 1
            self._rescue(exchange)
            raise
        exchange.waiters -= 1
        if decision is Delivery.PASSIVE:
            exchange.passive_replies += 1
            return exchange.reply_text()
        # Still running: answer `success` now; _on_done pushes unless a retry is waiting.
        return ""

    def _exchange(
        self,
        key: ExchangeKey,
        incoming: IncomingMessage,
        rasa_text: str,
        on_new_message: OnNewMessage,
        encrypted: bool,
    ) -> tuple[Exchange, bool]:
        """This process's exchange of `key`, its Rasa turn started if it is new."""

        def start() -> Exchange:
            user_message = UserMessage(
                rasa_text,
                CollectingOutputChannel(),
                incoming.from_user,
                input_channel=CHANNEL_NAME,
                message_id=incoming.dedup_key,
                metadata=wechat_metadata(incoming, encrypted),
            )
            task = asyncio.ensure_future(self._run_owned(key, on_new_message, user_message))
            return Exchange(key, task)

        exchange, created = self.exchanges.get_or_create(key, start)
        if created:
            exchange.task.add_done_callback(lambda _t: self._on_done(exchange))
        return exchange, created

    def _watch_holder(
        self,
        key: ExchangeKey,
        incoming: IncomingMessage,
        rasa_text: str,
        on_new_message: OnNewMessage,
        encrypted: bool,
    ) -> None:
        task = asyncio.ensure_future(
            self._take_over_if_orphaned(key, incoming, rasa_text, on_new_message, encrypted)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _take_over_if_orphaned(
        self,
        key: ExchangeKey,
        incoming: IncomingMessage,
        rasa_text: str,
        on_new_message: OnNewMessage,
        encrypted: bool,
    ) -> None:
        """A retry answered `success` while another server held its message: WeChat
        sends no more tries, so if that server dies (its claim lapses unanswered),
        nobody would ever answer. This server then processes the message and pushes
        the answer (a turn the dead server saved is answered from the conversation,
        bot.rasa_patches), instead of the resident hearing nothing."""
        assert self.shared is not None
        watch_until = time.monotonic() + self.shared.ttl_seconds
        try:
            while time.monotonic() < watch_until:
                await asyncio.sleep(ORPHAN_POLL_SECONDS)
                status, _ = self.shared.answer(key)
                if status == "done":
                    return  # its holder answered: it delivers (a push, or a later retry)
                if status == "missing":
                    if self.exchanges.get(key) is None and self._claim(key):
                        logger.warning(
                            "wechat: the server holding %s from %s died: answered here",
                            key[1],
                            key[0],
                        )
                        # nobody waits on this exchange: its answer is pushed when done
                        self._exchange(key, incoming, rasa_text, on_new_message, encrypted)
                    return
        except SharedStateUnavailable:
            return

    def _claim(self, key: ExchangeKey) -> bool:
        assert self.shared is not None
        try:
            return self.shared.claim(key)
        except SharedStateUnavailable as exc:
            # Without the shared state each server dedups its own retries only.
            logger.warning("wechat: shared exchanges unavailable (%s): processing here", exc)
            return True

    async def _await_remote(self, key: ExchangeKey, started: float) -> str | None:
        """A retry of a message another server is processing: its answer, '' for
        `success` (the deadline passed, or the answer is being pushed), or None when
        no server holds the message any more (its owner died: process it here)."""
        assert self.shared is not None
        logger.info("wechat retry of %s from %s: processed by another server", key[1], key[0])
        try:
            self.shared.add_waiter(key, 1)
        except SharedStateUnavailable:
            return ""
        try:
            while True:
                status, text = self.shared.answer(key)
                if status == "missing":
                    return None
                if status == "done":
                    if not text:
                        return ""
                    won = self.shared.claim_delivery(key, Delivery.PASSIVE)
                    return text if won is Delivery.PASSIVE else ""
                remaining = self.config.reply_deadline_seconds - (time.monotonic() - started)
                if remaining <= 0:
                    return ""
                await asyncio.sleep(min(REMOTE_POLL_SECONDS, remaining))
        except SharedStateUnavailable:
            return ""
        finally:
            try:
                self.shared.add_waiter(key, -1)
            except SharedStateUnavailable:
                pass

    async def _run_owned(
        self, key: ExchangeKey, on_new_message: OnNewMessage, message: UserMessage
    ) -> str:
        """`_run`, keeping this server's claim alive meanwhile and storing the answer."""
        if self.shared is None:
            return await self._run(on_new_message, message)
        shared = self.shared
        renewing = asyncio.ensure_future(self._keep_claim(shared, key))
        try:
            text = await self._run(on_new_message, message)
        finally:
            renewing.cancel()
        try:
            shared.finish(key, text)
        except SharedStateUnavailable as exc:
            logger.warning("wechat: answer of %s not shared (%s)", key[1], exc)
        return text

    @staticmethod
    async def _keep_claim(shared: SharedExchanges, key: ExchangeKey) -> None:
        while True:
            await asyncio.sleep(shared.claim_ttl_seconds / 3)
            try:
                shared.renew(key)
            except SharedStateUnavailable:
                pass

    async def _run(self, on_new_message: OnNewMessage, message: UserMessage) -> str:
        collector = message.output_channel
        sender = message.sender_id
        turns = self._sender_turns.get(sender, 0)
        if turns >= self.config.max_queued_per_sender:
            logger.warning("wechat: %s sends faster than they are answered: busy", sender)
            return self.busy_text
        self._sender_turns[sender] = turns + 1
        lock = self._sender_locks.setdefault(sender, asyncio.Lock())
        try:
            async with lock:
                if self.config.max_concurrent_turns > 0:
                    if self._turn_slots is None:
                        self._turn_slots = asyncio.Semaphore(self.config.max_concurrent_turns)
                    async with self._turn_slots:
                        await on_new_message(message)
                else:
                    await on_new_message(message)
        except Exception:  # noqa: BLE001 - a failed turn is logged; the resident is told
            logger.exception("wechat: processing message %s failed", message.message_id)
            return self.busy_text
        finally:
            left = self._sender_turns.get(sender, 1) - 1
            if left > 0:
                self._sender_turns[sender] = left
            else:
                self._sender_turns.pop(sender, None)
                self._sender_locks.pop(sender, None)
        messages = getattr(collector, "messages", [])
        notices = await self._take_deferred_notices(message.sender_id)
        return join_replies([*notices, *messages])

    async def _take_deferred_notices(self, openid: str) -> list[str]:
        # Taken only now that the reply exists, so they go out with it; a failing
        # store costs the news this time, never the reply.
        if self.deferred_notices is None:
            return []
        try:
            return await self.deferred_notices(openid)
        except Exception:  # noqa: BLE001
            logger.exception("wechat: deferred notices for %s unavailable", openid)
            return []

    def _on_done(self, exchange: Exchange) -> None:
        if exchange.decide() is Delivery.PUSH:
            self._schedule_push(exchange)

    def _rescue(self, exchange: Exchange) -> None:
        # The waiting request was cancelled (connection dropped) after the answer had
        # been promised to it: push instead, unless another request still waits.
        if (
            exchange.delivery is Delivery.PASSIVE
            and exchange.waiters == 0
            and exchange.passive_replies == 0
        ):
            exchange.delivery = Delivery.PUSH
            self._schedule_push(exchange)

    def _schedule_push(self, exchange: Exchange) -> None:
        if exchange.push_task is not None:
            return
        text = exchange.reply_text()
        if not text:
            return
        task = asyncio.ensure_future(self._push(exchange.key, text))
        exchange.push_task = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _push(self, key: ExchangeKey, text: str) -> None:
        openid = key[0]
        if self.shared is not None:
            try:
                if self.shared.waiters(key) > 0:
                    # A retry waits on another server: let it reply passively.
                    await asyncio.sleep(REMOTE_GRACE_SECONDS)
                if self.shared.claim_delivery(key, Delivery.PUSH) is not Delivery.PUSH:
                    return
            except SharedStateUnavailable:
                pass
        result = await self.api.send_text(openid, text)
        if result.ok:
            logger.info("wechat: late answer to %s sent through the customer-service API", openid)
        else:
            logger.warning(
                "wechat: late answer to %s not delivered: %s (errcode %s %s)",
                openid,
                result.status.value,
                result.errcode,
                result.errmsg,
            )


def domain_reply(name: str, domain_path: str | None = None) -> str:
    """The first text of response `name` in domain.yml ('' when missing)."""
    import yaml

    from bot.settings import PROJECT_ROOT

    path = domain_path or str(PROJECT_ROOT / "domain.yml")
    try:
        with open(path, encoding="utf-8") as handle:
            domain = yaml.safe_load(handle) or {}
        variants = (domain.get("responses") or {}).get(name) or []
        return str(variants[0].get("text") or "") if variants else ""
    except (OSError, yaml.YAMLError, AttributeError):
        logger.exception("wechat: reply %s not read from %s", name, path)
        return ""


def _agent_ready(request: Request) -> bool:
    """Whether this Rasa server has a model to answer with."""
    agent = getattr(request.app.ctx, "agent", None)
    is_ready = getattr(agent, "is_ready", None)
    return is_ready is None or bool(is_ready())


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (PayloadTooLarge) as soon as it exceeds `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("declared body too large")
    if request.body or request.stream is None:
        # Already read by Sanic (a non-streaming mount of this handler).
        body = request.body or b""
        if len(body) > limit:
            raise PayloadTooLarge("body too large")
        return body
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _success() -> HTTPResponse:
    return response.text("success")
