"""The WeChat channel inside the real Rasa server, talked to over HTTP as WeChat does.

Messages are built, signed and (in safe mode) encrypted by bot.channels.wechat_sender,
the same code as `python -m bot wechat-send`, and posted to /webhooks/wechat/webhook
of the running stack (trained model, action server, fresh SQLite databases).

Two stacks: `rasa_stack` (plaintext mode, default 4-s reply deadline, shared with the
other integration tests) and `safe_stack`, started by `rasa_stack_factory` on its own
ports and databases: AES safe mode, a 1.5-s reply deadline, a fake customer-service
API on 127.0.0.1, and a proxy in front of the action server that makes two actions
slower than the deadline, so their answers go out through the customer-service API.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import create_engine, text

from bot.channels.wechat_crypto import WXBizMsgCrypt, compute_signature
from bot.channels.wechat_protocol import (
    IncomingMessage,
    build_message_xml,
    new_nonce,
    parse_message,
)
from bot.channels.wechat_sender import (
    DEFAULT_ACCOUNT,
    WEBHOOK_PATH,
    build_incoming_xml,
    decode_reply,
    sign_request,
)
from tests.conftest import RasaStack, StackFactory, free_port

pytestmark = pytest.mark.rasa_server

TICKET_NUMBER = re.compile(r"\d{8}-\d{4}")
GREETING_MENU = ("反映问题", "找社区工作人员")

# Safe-mode account (the EncodingAESKey is the example of WeChat's documentation).
APPID = "wxb11529c136998cb6"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_SECRET = "secret"
# Safe-mode stack: the reply deadline, and the actions that the proxy in front of the
# action server holds up for longer than that (a slow action forces the deadline path).
# A tiny deadline would not force it reliably: Rasa runs NLU, policies and SQLite in the
# event loop without yielding, so a turn without an action-server call may finish before
# the loop ever looks at the timer, and is then (correctly) answered passively.
SAFE_DEADLINE_SECONDS = 1.5
SLOW_ACTIONS = frozenset({"action_submit_report", "action_check_tickets"})
SLOW_ACTION_SECONDS = 6.0  # the retry below must still find it running

HTTP_TIMEOUT = 60


def new_user() -> str:
    """An OpenID-like FromUserName, fresh for each test."""
    return "oIT" + uuid.uuid4().hex[:25]


def new_msg_id() -> int:
    return int.from_bytes(os.urandom(8), "big") >> 1 or 1


@dataclass
class Posted:
    status: int
    body: bytes
    seconds: float


class WeChatServer:
    """Posts to the webhook exactly as WeChat's server does (signature, optional AES)."""

    def __init__(self, stack: RasaStack, crypto: WXBizMsgCrypt | None = None) -> None:
        self.stack = stack
        self.url = stack.rasa_url + WEBHOOK_PATH
        self.token = stack.env["WECHAT_TOKEN"]
        self.crypto = crypto

    def post_raw(self, body: bytes | str, params: dict[str, str]) -> Posted:
        data = body.encode("utf-8") if isinstance(body, str) else body
        started = time.monotonic()
        response = requests.post(
            self.url,
            params=params,
            data=data,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            timeout=HTTP_TIMEOUT,
        )
        return Posted(response.status_code, response.content, time.monotonic() - started)

    def signed_params(self, user: str = "oHostile") -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), new_nonce()
        return {
            "signature": compute_signature(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": user,
        }

    def post(self, text: str | None, *, user: str, msg_id: int, **kwargs: Any) -> Posted:
        xml = build_incoming_xml(text, user=user, msg_id=msg_id, **kwargs)
        params, body = sign_request(xml, token=self.token, user=user, crypto=self.crypto)
        return self.post_raw(body, params)

    def say(self, text: str, *, user: str, msg_id: int | None = None) -> str:
        """The passive reply's text ('' for `success`); fails on an HTTP error."""
        posted = self.post(text, user=user, msg_id=msg_id or new_msg_id())
        assert posted.status == 200, (posted.status, posted.body[:200])
        return decode_reply(posted.body, self.crypto, user)


def user_events_with_message_id(stack: RasaStack, sender: str, msg_id: int) -> list[dict]:
    """The tracker's `user` events carrying this MsgId: how often Rasa processed it."""
    response = requests.get(
        f"{stack.rasa_url}/conversations/{sender}/tracker",
        params=stack.rasa_api_params,
        timeout=HTTP_TIMEOUT,
    )
    response.raise_for_status()
    return [
        event
        for event in response.json().get("events", [])
        if event.get("event") == "user" and event.get("message_id") == str(msg_id)
    ]


def tickets_of(database_url: str, sender: str) -> list[dict]:
    engine = create_engine(database_url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT t.number, t.category_code, t.channel, t.message_id, t.sender_id,"
                    " g.code AS grid FROM tickets t LEFT JOIN grids g ON g.id = t.grid_id"
                    " WHERE t.sender_id = :sender ORDER BY t.id"
                ),
                {"sender": sender},
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


# -- fake WeChat API (token + customer-service send) ---------------------------------------


@dataclass
class FakeCustomerServiceApi:
    """WeChat's /cgi-bin/token and /cgi-bin/message/custom/send on 127.0.0.1.

    Runs in a thread, so it answers whatever the test is doing, for the module's whole
    lifetime; records what it receives.
    """

    appid: str
    secret: str
    token_requests: list[dict[str, str]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    send_tokens: list[str] = field(default_factory=list)
    issued: int = 0
    current_token: str | None = None
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _json(self, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                if parts.path != "/cgi-bin/token":
                    self.send_error(404)
                    return
                self._json(fake.token(parse_qs(parts.query)))

            def do_POST(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if parts.path != "/cgi-bin/message/custom/send":
                    self.send_error(404)
                    return
                self._json(fake.send(parse_qs(parts.query), raw))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def token(self, query: dict[str, list[str]]) -> dict[str, Any]:
        flat = {k: v[0] for k, v in query.items()}
        with self._lock:
            self.token_requests.append(flat)
            if flat.get("grant_type") != "client_credential" or (
                flat.get("appid"),
                flat.get("secret"),
            ) != (self.appid, self.secret):
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            self.issued += 1
            self.current_token = f"ACCESS_TOKEN_{self.issued}"
            return {"access_token": self.current_token, "expires_in": 7200}

    def send(self, query: dict[str, list[str]], raw: bytes) -> dict[str, Any]:
        token = (query.get("access_token") or [""])[0]
        with self._lock:
            self.send_tokens.append(token)
            if token != self.current_token:
                return {"errcode": 40001, "errmsg": "invalid credential"}
            self.sends.append({"raw": raw, "json": json.loads(raw.decode("utf-8"))})
            self._lock.notify_all()
            return {"errcode": 0, "errmsg": "ok"}

    def sends_to(self, openid: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s["json"] for s in self.sends if s["json"].get("touser") == openid]

    def wait_for_sends_to(self, openid: str, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.sends_to(openid)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            return self.sends_to(openid)


# -- slow action: a proxy in front of the action server ---------------------------------


@dataclass
class SlowActionProxy:
    """Forwards Rasa's calls to the action server, holding `slow_actions` for `delay` s.

    Stands between the Rasa server and the action server (ACTION_ENDPOINT_URL), so that
    one action of the real action server is slow without touching actions/.
    """

    target_port: int
    slow_actions: frozenset[str]
    delay: float
    calls: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/webhook"

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = json.loads(raw or b"{}").get("next_action", "")
                proxy.calls.append(action)
                if action in proxy.slow_actions:
                    time.sleep(proxy.delay)
                request = urllib.request.Request(
                    f"http://127.0.0.1:{proxy.target_port}{self.path}",
                    data=raw,
                    headers={"Content-Type": "application/json"},
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# -- fixtures --------------------------------------------------------------------------------


def warm_up(stack: RasaStack) -> None:
    """One conversation through REST first: the first turns of a fresh server load
    and trace the models, which could take longer than WeChat's deadline."""
    sender = "warm-up-" + uuid.uuid4().hex[:8]
    for message in ("你好", "俺家暖气不热", "和平新村三号楼2单元501", "谢谢"):
        response = requests.post(
            f"{stack.rasa_url}/webhooks/rest/webhook",
            json={"sender": sender, "message": message},
            timeout=120,
        )
        response.raise_for_status()
        # Rasa answers [] when it could not load the model (e.g. a half-written file).
        assert response.json(), f"no answer to {message!r}: is the model loaded?"


@pytest.fixture(scope="module")
def wechat(rasa_stack: RasaStack) -> WeChatServer:
    """WeChat's server in front of the shared plaintext-mode stack."""
    warm_up(rasa_stack)
    return WeChatServer(rasa_stack)


@pytest.fixture(scope="module")
def fake_wechat_api() -> Iterator[FakeCustomerServiceApi]:
    fake = FakeCustomerServiceApi(APPID, APP_SECRET)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@dataclass
class SafeStack:
    stack: RasaStack
    wechat: WeChatServer
    api: FakeCustomerServiceApi
    proxy: SlowActionProxy


@pytest.fixture(scope="module")
def safe_stack(
    rasa_stack_factory: StackFactory, fake_wechat_api: FakeCustomerServiceApi
) -> Iterator[SafeStack]:
    """A second stack: safe mode, the customer-service API on the fake, slow actions."""
    actions_port = free_port()
    proxy = SlowActionProxy(actions_port, SLOW_ACTIONS, SLOW_ACTION_SECONDS)
    proxy.start()
    try:
        stack = rasa_stack_factory(
            "safe-stack",
            actions_port=actions_port,
            wechat_appid=APPID,
            wechat_aes_key=AES_KEY,
            wechat_app_secret=APP_SECRET,
            wechat_api_base=fake_wechat_api.url,
            wechat_reply_deadline_seconds=SAFE_DEADLINE_SECONDS,
            env={"ACTION_ENDPOINT_URL": proxy.url},
            # The channel's processes only: the web app's own senders would also use
            # the fake API, with a token of their own.
            only=("actions", "rasa"),
        )
        try:
            warm_up(stack)
            crypto = WXBizMsgCrypt(stack.env["WECHAT_TOKEN"], AES_KEY, APPID)
            yield SafeStack(stack, WeChatServer(stack, crypto), fake_wechat_api, proxy)
        finally:
            stack.stop()
    finally:
        proxy.stop()


# -- URL verification ------------------------------------------------------------------------


def test_url_verification_echoes_echostr(wechat: WeChatServer) -> None:
    timestamp, nonce = str(int(time.time())), new_nonce()
    params = {
        "signature": compute_signature(wechat.token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": "8403837735398425815",
    }
    response = requests.get(wechat.url, params=params, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    assert response.text == "8403837735398425815"

    params["signature"] = compute_signature("not-our-token", timestamp, nonce)
    response = requests.get(wechat.url, params=params, timeout=HTTP_TIMEOUT)
    assert response.status_code == 403
    assert "8403837735398425815" not in response.text


# -- plaintext mode: passive replies ---------------------------------------------------------


def test_greeting_gets_a_passive_xml_reply(wechat: WeChatServer) -> None:
    user = new_user()
    posted = wechat.post("你好", user=user, msg_id=new_msg_id())
    assert posted.status == 200
    reply: IncomingMessage = parse_message(posted.body)
    assert reply.to_user == user  # swapped: to the resident ...
    assert reply.from_user == DEFAULT_ACCOUNT  # ... from the Official Account
    assert reply.msg_type == "text"
    assert abs(reply.create_time - time.time()) < 120
    assert all(item in (reply.content or "") for item in GREETING_MENU), reply.content


def report_heating(wechat: WeChatServer, user: str) -> None:
    reply = wechat.say("俺家暖气不热好几天了", user=user)
    assert "您住在哪个小区几号楼几单元" in reply, reply
    reply = wechat.say("和平新村三号楼2单元501", user=user)
    assert "确认提交吗" in reply and "和平新村社区3号楼2单元501" in reply, reply


def test_full_report_over_wechat_opens_one_ticket_even_when_retried(
    wechat: WeChatServer,
) -> None:
    user = new_user()
    report_heating(wechat, user)

    confirm_id = new_msg_id()
    reply = wechat.say("是", user=user, msg_id=confirm_id)
    number = TICKET_NUMBER.search(reply)
    assert number, reply

    [ticket] = tickets_of(wechat.stack.database_url, user)
    assert ticket["number"] == number.group()
    assert ticket["channel"] == "wechat"
    assert ticket["message_id"] == str(confirm_id)
    assert ticket["grid"] == "HPXC-01" and ticket["category_code"] == "HEATING"

    # WeChat retries the same MsgId (it did not get our answer in time, say): the same
    # passive reply, no second turn in Rasa, no second ticket.
    assert wechat.say("是", user=user, msg_id=confirm_id) == reply
    assert len(tickets_of(wechat.stack.database_url, user)) == 1
    assert len(user_events_with_message_id(wechat.stack, user, confirm_id)) == 1


def test_concurrent_retries_of_one_message_make_one_ticket(wechat: WeChatServer) -> None:
    user = new_user()
    report_heating(wechat, user)

    confirm_id = new_msg_id()
    with ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(pool.map(lambda _: wechat.say("是", user=user, msg_id=confirm_id), range(3)))
    assert TICKET_NUMBER.search(replies[0]), replies
    assert replies == [replies[0]] * 3

    [ticket] = tickets_of(wechat.stack.database_url, user)
    assert ticket["message_id"] == str(confirm_id) and ticket["channel"] == "wechat"
    assert ticket["number"] == TICKET_NUMBER.search(replies[0]).group()
    assert len(user_events_with_message_id(wechat.stack, user, confirm_id)) == 1


# -- hostile input -----------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE xml [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n<xml><ToUserName><![CDATA[gh_neighbourhood]]></ToUserName>"
    "<FromUserName><![CDATA[oHostile]]></FromUserName><CreateTime>1714036504</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content>&lol9;</Content>"
    "<MsgId>1234567890123456</MsgId></xml>"
)


def test_hostile_input_is_refused_and_the_server_keeps_answering(wechat: WeChatServer) -> None:
    user = "oHostile"
    valid = build_incoming_xml("你好", user=user, msg_id=new_msg_id())

    # > 64 KB, declared in Content-Length ...
    big = valid.replace("你好", "x" * (65 * 1024))
    assert wechat.post_raw(big, wechat.signed_params(user)).status == 413

    # ... and chunked, without a Content-Length: cut off while streaming.
    def chunks() -> Iterator[bytes]:
        data = big.encode()
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    response = requests.post(
        wechat.url, params=wechat.signed_params(user), data=chunks(), timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 413

    assert wechat.post_raw("<xml><ToUserName>", wechat.signed_params(user)).status == 400
    assert wechat.post_raw(b"\xff\xfe\x00garbage", wechat.signed_params(user)).status == 400
    assert wechat.post_raw(BILLION_LAUGHS, wechat.signed_params(user)).status == 400

    bad = wechat.signed_params(user)
    bad["signature"] = compute_signature("not-our-token", bad["timestamp"], bad["nonce"])
    assert wechat.post_raw(valid, bad).status == 403
    assert wechat.post_raw(valid, {}).status == 403  # no signature at all

    # An encrypted-mode request to a plaintext-mode server is refused, not a 500.
    envelope = build_message_xml([("ToUserName", DEFAULT_ACCOUNT), ("Encrypt", "AAAA")])
    params = wechat.signed_params(user) | {"encrypt_type": "aes", "msg_signature": "x"}
    assert wechat.post_raw(envelope, params).status in (400, 403)

    reply = wechat.say("你好", user=new_user())
    assert all(item in reply for item in GREETING_MENU), reply


# -- safe mode: encrypted replies; a slow action misses the deadline -----------------------


def is_success(posted: Posted) -> bool:
    return posted.status == 200 and posted.body.strip() in (b"success", b"")


def test_safe_mode_fast_answers_come_back_encrypted(safe_stack: SafeStack) -> None:
    wechat = safe_stack.wechat
    user = new_user()
    posted = wechat.post("你好", user=user, msg_id=new_msg_id())
    assert posted.status == 200 and b"<Encrypt>" in posted.body
    assert b"<MsgSignature>" in posted.body and "反映问题".encode() not in posted.body
    reply = decode_reply(posted.body, wechat.crypto, user)  # verifies and decrypts
    assert all(item in reply for item in GREETING_MENU), reply


def test_slow_action_is_pushed_through_customer_service_once(safe_stack: SafeStack) -> None:
    wechat, api = safe_stack.wechat, safe_stack.api
    user = new_user()
    # Fast turns: passive replies, inside the deadline.
    assert "您住在哪个小区几号楼几单元" in wechat.say("俺家暖气不热好几天了", user=user)
    assert "确认提交吗" in wechat.say("和平新村三号楼2单元501", user=user)
    assert api.sends_to(user) == []

    # "是" runs action_submit_report, held up by the proxy: after the deadline the
    # webhook answers `success`, well before WeChat's 5 s.
    confirm_id = new_msg_id()
    posted = wechat.post("是", user=user, msg_id=confirm_id)
    assert is_success(posted), posted
    assert SAFE_DEADLINE_SECONDS - 0.1 < posted.seconds < 4.5, posted.seconds

    # WeChat's retry while the action still runs: it waits its own deadline on the same
    # processing, then `success` again.
    retry = wechat.post("是", user=user, msg_id=confirm_id)
    assert is_success(retry), retry

    [push] = api.wait_for_sends_to(user, 1)
    assert push["touser"] == user and push["msgtype"] == "text"
    number = TICKET_NUMBER.search(push["text"]["content"])
    assert number, push
    [token_request] = api.token_requests
    assert token_request == {
        "grant_type": "client_credential",
        "appid": APPID,
        "secret": APP_SECRET,
    }

    [ticket] = tickets_of(safe_stack.stack.database_url, user)
    assert ticket["number"] == number.group()
    assert (ticket["channel"], ticket["message_id"]) == ("wechat", str(confirm_id))
    assert ticket["grid"] == "HPXC-01"

    # Retries after the push, one and then three at once: `success`, nothing new.
    assert is_success(wechat.post("是", user=user, msg_id=confirm_id))
    with ThreadPoolExecutor(max_workers=3) as pool:
        retries = list(
            pool.map(lambda _: wechat.post("是", user=user, msg_id=confirm_id), range(3))
        )
    assert all(is_success(r) for r in retries), retries
    time.sleep(1.0)
    assert len(api.sends_to(user)) == 1
    assert len(tickets_of(safe_stack.stack.database_url, user)) == 1
    assert len(user_events_with_message_id(safe_stack.stack, user, confirm_id)) == 1
    assert safe_stack.proxy.calls.count("action_submit_report") >= 1

    # Another slow turn (checking the ticket): pushed with the cached access token.
    posted = wechat.post("我上次反映的暖气咋样了", user=user, msg_id=new_msg_id())
    assert is_success(posted), posted
    pushes = api.wait_for_sends_to(user, 2)
    assert len(pushes) == 2 and number.group() in pushes[1]["text"]["content"], pushes
    assert len(api.token_requests) == 1
    assert set(api.send_tokens) == {"ACCESS_TOKEN_1"}


def test_safe_mode_get_verification_and_bad_msg_signature(safe_stack: SafeStack) -> None:
    wechat = safe_stack.wechat
    timestamp, nonce = str(int(time.time())), new_nonce()
    params = {
        "signature": compute_signature(wechat.token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": "echo-safe",
    }
    assert requests.get(wechat.url, params=params, timeout=HTTP_TIMEOUT).text == "echo-safe"

    user = new_user()
    xml = build_incoming_xml("你好", user=user, msg_id=new_msg_id())
    assert wechat.crypto is not None
    params, body = sign_request(xml, token=wechat.token, user=user, crypto=wechat.crypto)
    params["msg_signature"] = "0" * 40
    assert wechat.post_raw(body, params).status == 403
    assert safe_stack.api.sends_to(user) == []
