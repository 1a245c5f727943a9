"""The WeChat webhook under load, against Rasa's REST channel on the same server.

    .venv/bin/python benchmarks/webhook_load.py                     # 5,10,20,40 msg/s, 60 s
    .venv/bin/python benchmarks/webhook_load.py --quick             # 5,10 msg/s, 15 s
    .venv/bin/python benchmarks/webhook_load.py --rates 5,10 --duration 30
    .venv/bin/python benchmarks/webhook_load.py --interleave    # both channels at once
    .venv/bin/python benchmarks/webhook_load.py --max-concurrent-turns 0   # channel's bound

Starts the action server and one Rasa server (bot.launcher, endpoints.yml: SQLite
tracker store, in-memory lock store) on free ports of 127.0.0.1 with fresh SQLite
files, the WeChat channel in safe mode (AES) with the default 4-s reply deadline, and
a fake WeChat API (access token + customer-service send) on 127.0.0.1 in this
process, so answers that miss the deadline are delivered and counted.

For each rate, the same schedule is sent once through /webhooks/wechat/webhook (built,
signed and encrypted beforehand as WeChat's server does, with wechat_sender) and once
through /webhooks/rest/webhook (the order alternates from rate to rate; `--interleave`:
one phase per rate in which the two channels alternate message by message, each at
half the rate, so both see the same moment of a shared machine). Open loop:
message k leaves at start + k / rate whatever happened to the earlier ones, and its
latency counts from that scheduled time. 200 residents take turns (resident k mod 200),
each following one of five realistic conversations (greeting, reports with addresses
and confirmations, a service question, thanks, out of scope). Every phase uses fresh
sender ids, so both channels see identical conversations.

Per rate and channel: p50/p95/p99/max latency, errors, WeChat's passive replies vs
`success` (the deadline path), customer-service deliveries and their delay, replies
slower than WeChat's 5 s, CPU time of the Rasa and action servers per message, and
the highest rate whose p99 stays under 1 s. Figures go to benchmarks/README.md
("WeChat webhook under load"; full runs only unless --readme) and
benchmarks/results/webhook-load-*.json.

Bounded: at most 200 msg/s, 600 s per phase, 20,000 messages per phase; every request
has a timeout; waiting for late answers after a phase is bounded (--drain).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from bench_common import (
    OFFLINE_ENV,
    PROJECT_ROOT,
    README,
    RESULTS_DIR,
    cpu_seconds,
    free_port,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    percentile,
    update_readme_section,
)

from bot import launcher
from bot.channels.wechat import DEFAULT_MAX_CONCURRENT_TURNS
from bot.channels.wechat_crypto import WXBizMsgCrypt
from bot.channels.wechat_sender import (
    WEBHOOK_PATH,
    SenderError,
    build_incoming_xml,
    decode_reply,
    sign_request,
)
from bot.settings import load_settings

SECTION = "WeChat webhook under load"
COMMAND = ".venv/bin/python benchmarks/webhook_load.py"

APPID = "wxb11529c136998cb6"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # WeChat's documented example
APP_SECRET = "bench-secret"
TOKEN = "bench-token"

WECHAT_DEADLINE_SECONDS = 5.0  # WeChat drops the request after 5 s
WECHAT_CLIENT_TIMEOUT = 15.0  # longer than WeChat, to see how late a reply would be
REST_CLIENT_TIMEOUT = 30.0
P99_TARGET_MS = 1000.0
MAX_RATE, MAX_DURATION, MAX_MESSAGES = 200.0, 600.0, 20_000

# Five conversations; resident i follows CONVERSATIONS[i % 5] from the start, then
# over again (each phase has fresh sender ids).
CONVERSATIONS: tuple[tuple[str, ...], ...] = (
    ("你好", "俺家暖气不热好几天了", "和平新村三号楼2单元501", "是", "谢谢"),
    ("小区门口有辆僵尸车好几个月没动了", "裕园小区12号楼", "是", "谢谢", "再见"),
    ("想给孩子开个居住证明 需要带啥", "谢谢", "明天天气怎么样"),
    ("楼上装修电钻声太吵了", "和平新村8号楼1单元302", "不是", "你好"),
    ("今天股票涨了没", "跟我聊天的是真人还是机器", "找个人跟我说", "裕园3号楼2单元", "再见"),
)


# -- fake WeChat API -------------------------------------------------------------------


@dataclass
class Push:
    at: float  # loop time
    touser: str
    content: str


@dataclass
class FakeWeChatApi:
    """/cgi-bin/token and /cgi-bin/message/custom/send, in this process's loop."""

    url: str = ""
    token_requests: int = 0
    rejected: int = 0
    pushes: list[Push] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if (request.query.get("appid"), request.query.get("secret")) != (APPID, APP_SECRET):
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        return web.json_response({"access_token": "BENCH_TOKEN", "expires_in": 7200})

    async def _send(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") != "BENCH_TOKEN":
            self.rejected += 1
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        data = await request.json()
        loop_time = asyncio.get_running_loop().time()
        self.pushes.append(Push(loop_time, data.get("touser", ""), data["text"]["content"]))
        return web.json_response({"errcode": 0, "errmsg": "ok"})


# -- the stack ---------------------------------------------------------------------------


@dataclass
class Stack:
    rasa_url: str
    services: list[launcher.Service]
    log: Path

    def cpu_seconds(self) -> dict[str, float]:
        """user + system CPU seconds of each server process so far."""
        return {
            service.name: cpu_seconds(service.process.pid)
            for service in self.services
            if service.process is not None
        }


def credentials_file(workdir: Path, max_concurrent_turns: int | None) -> str:
    """credentials.yml, or a copy giving the WeChat channel `max_concurrent_turns`."""
    if max_concurrent_turns is None:
        return "credentials.yml"
    credentials = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text("utf-8"))
    wechat = credentials.get("bot.channels.wechat.WeChatInput") or {}
    wechat["max_concurrent_turns"] = max_concurrent_turns
    credentials["bot.channels.wechat.WeChatInput"] = wechat
    path = workdir / "credentials.yml"
    path.write_text(yaml.safe_dump(credentials, allow_unicode=True), "utf-8")
    return str(path)


@contextmanager
def running_stack(
    model: Path, workdir: Path, api_base: str, max_concurrent_turns: int | None = None
) -> Iterator[Stack]:
    settings = replace(
        load_settings(),
        rasa_port=free_port(),
        actions_port=free_port(),
        web_port=free_port(),
        database_url=f"sqlite:///{workdir / 'neighbourhood.db'}",
        tracker_database_url=f"sqlite:///{workdir / 'conversations.db'}",
        wechat_token=TOKEN,
        wechat_appid=APPID,
        wechat_aes_key=AES_KEY,
        wechat_app_secret=APP_SECRET,
        wechat_api_base=api_base,
    )
    env = launcher.rasa_environment(settings)
    env.update(
        {
            **OFFLINE_ENV,
            "DATABASE_URL": settings.database_url,
            "RASA_PORT": str(settings.rasa_port),
            "ACTIONS_PORT": str(settings.actions_port),
            "WECHAT_REPLY_DEADLINE_SECONDS": str(settings.wechat_reply_deadline_seconds),
            "WECOM_API_BASE": "http://127.0.0.1:9",  # nothing leaves the machine
            "LOG_LEVEL": "WARNING",
        }
    )
    env.pop("RASA_AUTH_TOKEN", None)
    launcher.prepare_database(env)
    # The measured path only: not the web app, not the escalation worker.
    services = [s for s in launcher.services(settings, model) if s.name in ("actions", "rasa")]
    credentials = credentials_file(workdir, max_concurrent_turns)
    for service in services:
        service.command = [credentials if a == "credentials.yml" else a for a in service.command]
    log = workdir / "servers.log"
    with log.open("wb") as output:
        try:
            for service in services:
                service.process = subprocess.Popen(
                    service.command,
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            for service in services:
                launcher.wait_healthy(service.health_url, 300, service.process)
            yield Stack(f"http://127.0.0.1:{settings.rasa_port}", services, log)
        finally:
            launcher.stop(services)


# -- load ----------------------------------------------------------------------------------


@dataclass
class Request:
    index: int  # position in the phase's schedule
    channel: str  # "wechat" or "rest"
    sender: str
    text: str
    params: dict[str, str] | None = None  # WeChat query
    body: bytes = b""


@dataclass
class Outcome:
    index: int
    channel: str
    sender: str
    scheduled: float  # loop time
    lag_ms: float  # how late the request left
    ms: float  # from the scheduled time to the whole response read
    status: int  # 0: no response (timeout or connection error)
    kind: str  # wechat: passive / success / error; rest: answered / empty / error
    error: str = ""
    body: bytes = b""


Plan = list[tuple[str, int, str]]  # (channel, resident, text) in sending order


def schedule(channels: tuple[str, ...], rate: float, duration: float, residents: int) -> Plan:
    """The phase's messages. With two channels they alternate, each carrying the same
    conversations (message 2j on one, 2j+1 on the other), at rate / 2 each."""
    count = int(round(rate * duration))
    out = []
    for k in range(count):
        channel = channels[k % len(channels)]
        j = k // len(channels)
        resident, turn = j % residents, j // residents
        conversation = CONVERSATIONS[resident % len(CONVERSATIONS)]
        out.append((channel, resident, conversation[turn % len(conversation)]))
    return out


def build_requests(tag: str, plan: Plan, crypto: WXBizMsgCrypt) -> list[Request]:
    """Bodies built (and for WeChat signed and encrypted) before the phase starts."""
    requests = []
    for index, (channel, resident, text) in enumerate(plan):
        sender = f"o{tag}{channel[0]}{resident:04d}"
        if channel == "rest":
            body = json.dumps({"sender": sender, "message": text}, ensure_ascii=False)
            requests.append(Request(index, channel, sender, text, None, body.encode("utf-8")))
            continue
        xml = build_incoming_xml(text, user=sender, msg_id=10**15 + index)
        params, body = sign_request(xml, token=TOKEN, user=sender, crypto=crypto)
        requests.append(Request(index, channel, sender, text, params, body.encode("utf-8")))
    return requests


def path_of(channel: str) -> str:
    return WEBHOOK_PATH if channel == "wechat" else "/webhooks/rest/webhook"


async def send_one(
    session: aiohttp.ClientSession, base_url: str, request: Request, scheduled: float
) -> Outcome:
    loop = asyncio.get_running_loop()
    channel, url = request.channel, base_url + path_of(request.channel)
    lag_ms = (loop.time() - scheduled) * 1000
    timeout = WECHAT_CLIENT_TIMEOUT if channel == "wechat" else REST_CLIENT_TIMEOUT
    headers = {
        "Content-Type": "text/xml; charset=utf-8" if channel == "wechat" else "application/json"
    }
    status, raw, error = 0, b"", ""
    try:
        async with session.post(
            url,
            params=request.params,
            data=request.body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            raw = await response.read()
            status = response.status
    except asyncio.TimeoutError:
        error = "timeout"
    except aiohttp.ClientError as exc:
        error = type(exc).__name__
    ms = (loop.time() - scheduled) * 1000
    if status != 200:
        kind = "error"
    elif channel == "wechat":
        kind = "success" if raw.strip() in (b"", b"success") else "passive"
    else:
        kind = "answered" if raw.strip() not in (b"", b"[]") else "empty"
    return Outcome(
        request.index, channel, request.sender, scheduled, lag_ms, ms, status, kind, error, raw
    )


@dataclass
class Phase:
    channel: str
    rate: float  # server load: messages per second over all channels of the phase
    duration: float
    sent: int
    outcomes: list[Outcome]
    cpu: dict[str, float]  # seconds during the phase (incl. draining late answers)
    load_before: str
    load_after: str
    cpu_messages: int = 0  # messages `cpu` was spent on (all channels of the phase)
    pushes_expected: int = 0
    pushes: list[float] = field(default_factory=list)  # delay of each late answer, ms
    pushes_unmatched: int = 0
    drain_seconds: float = 0.0
    invalid_replies: int = 0

    def latencies(self) -> list[float]:
        return [o.ms for o in self.outcomes]

    def count(self, kind: str) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)

    def p(self, q: float) -> float:
        return percentile(self.latencies(), q)

    def over(self, ms: float) -> int:
        return sum(1 for o in self.outcomes if o.ms >= ms or o.status == 0)

    def summary(self) -> dict[str, Any]:
        cpu_ms = {k: v * 1000 / max(self.cpu_messages, 1) for k, v in self.cpu.items()}
        return {
            "channel": self.channel,
            "rate": self.rate,
            "sent": self.sent,
            "p50_ms": self.p(50),
            "p95_ms": self.p(95),
            "p99_ms": self.p(99),
            "max_ms": max(self.latencies(), default=float("nan")),
            "max_lag_ms": max((o.lag_ms for o in self.outcomes), default=float("nan")),
            "errors": self.count("error"),
            "timeouts": sum(1 for o in self.outcomes if o.error == "timeout"),
            "passive": self.count("passive"),
            "success": self.count("success"),
            "answered": self.count("answered"),
            "empty": self.count("empty"),
            "over_5s": self.over(WECHAT_DEADLINE_SECONDS * 1000),
            "pushes_expected": self.pushes_expected,
            "pushes": len(self.pushes),
            "pushes_unmatched": self.pushes_unmatched,
            "push_p50_ms": percentile(self.pushes, 50),
            "push_max_ms": max(self.pushes, default=float("nan")),
            "invalid_replies": self.invalid_replies,
            "cpu_ms_per_message": cpu_ms,
            "drain_seconds": self.drain_seconds,
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


async def run_phase(
    stack: Stack,
    api: FakeWeChatApi,
    crypto: WXBizMsgCrypt,
    channels: tuple[str, ...],
    rate: float,
    duration: float,
    residents: int,
    tag: str,
    drain_limit: float,
) -> list[Phase]:
    """One phase at `rate` messages/s over `channels`; a Phase per channel."""
    loop = asyncio.get_running_loop()
    requests = build_requests(tag, schedule(channels, rate, duration, residents), crypto)
    pushes_before = len(api.pushes)
    load_before, cpu_before = load_average(), stack.cpu_seconds()
    print(
        f"  {' + '.join(channels)} {rate:g} msg/s x {duration:g} s = {len(requests)} messages",
        flush=True,
    )

    connector = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = loop.time() + 0.2
        tasks = []
        for request in requests:
            at = start + request.index / rate
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(send_one(session, stack.rasa_url, request, at)))
        outcomes = list(await asyncio.gather(*tasks))

    phases = {
        channel: Phase(
            channel,
            rate,
            duration,
            sum(1 for o in outcomes if o.channel == channel),
            [o for o in outcomes if o.channel == channel],
            {},
            load_before,
            "",
            cpu_messages=len(outcomes),
        )
        for channel in channels
    }
    drain_started = loop.time()
    wechat = phases.get("wechat")
    if wechat is not None:
        wechat.pushes_expected = wechat.count("success")
        deadline = loop.time() + drain_limit
        while len(api.pushes) - pushes_before < wechat.pushes_expected and loop.time() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # stragglers
        wechat.pushes, wechat.pushes_unmatched = match_pushes(
            wechat.outcomes, api.pushes[pushes_before:]
        )
        wechat.invalid_replies = count_invalid(wechat.outcomes, crypto)
    cpu_after = stack.cpu_seconds()
    load_after = load_average()
    for phase in phases.values():
        phase.drain_seconds = loop.time() - drain_started
        phase.cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
        phase.load_after = load_after
    for outcome in outcomes:
        outcome.body = b""  # not kept in the raw results
    return list(phases.values())


def match_pushes(outcomes: list[Outcome], pushes: list[Push]) -> tuple[list[float], int]:
    """Delay (ms, from the scheduled send) of each late answer, matched per resident in
    order with the messages that got `success`; and how many pushes matched nothing."""
    waiting: dict[str, deque[float]] = defaultdict(deque)
    for outcome in sorted(outcomes, key=lambda o: o.scheduled):
        if outcome.kind == "success":
            waiting[outcome.sender].append(outcome.scheduled)
    delays, unmatched = [], 0
    for push in sorted(pushes, key=lambda p: p.at):
        queue = waiting.get(push.touser)
        if queue:
            delays.append((push.at - queue.popleft()) * 1000)
        else:
            unmatched += 1
    return delays, unmatched


def count_invalid(outcomes: list[Outcome], crypto: WXBizMsgCrypt) -> int:
    """Passive replies WeChat would reject (bad signature, bad XML, wrong addressee)."""
    invalid = 0
    for outcome in outcomes:
        if outcome.kind != "passive":
            continue
        try:
            if not decode_reply(outcome.body, crypto, outcome.sender):
                invalid += 1
        except SenderError:
            invalid += 1
    return invalid


async def warm_up(stack: Stack, crypto: WXBizMsgCrypt) -> None:
    """Both channels once through every conversation (not measured)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        for channel in ("rest", "wechat"):
            plan = [(channel, i, text) for i, conv in enumerate(CONVERSATIONS) for text in conv]
            for request in build_requests("warm", plan, crypto):
                content_type = "text/xml" if channel == "wechat" else "application/json"
                async with session.post(
                    stack.rasa_url + path_of(channel),
                    params=request.params,
                    data=request.body,
                    headers={"Content-Type": content_type},
                ) as response:
                    await response.read()


async def measure(args: argparse.Namespace, model: Path, workdir: Path) -> list[Phase]:
    api = FakeWeChatApi()
    await api.start()
    crypto = WXBizMsgCrypt(TOKEN, AES_KEY, APPID)
    phases: list[Phase] = []
    try:
        with running_stack(model, workdir, api.url, args.max_concurrent_turns) as stack:
            print(f"Stack up at {stack.rasa_url}; warming up", flush=True)
            await warm_up(stack, crypto)
            await asyncio.sleep(2.0)
            for number, rate in enumerate(args.rates):
                if args.interleave:
                    groups: list[tuple[str, ...]] = [("wechat", "rest")]
                elif number % 2 == 0:
                    groups = [("wechat",), ("rest",)]
                else:
                    groups = [("rest",), ("wechat",)]
                for channels in groups:
                    done = await run_phase(
                        stack,
                        api,
                        crypto,
                        channels,
                        rate,
                        args.duration,
                        args.residents,
                        f"p{number}{channels[0][0]}",
                        args.drain,
                    )
                    for phase in done:
                        phases.append(phase)
                        print(f"    {phase.channel:6s} " + one_line(phase), flush=True)
                    await asyncio.sleep(args.pause)
            print(f"Server log: {stack.log}", flush=True)
    finally:
        await api.stop()
    return phases


# -- report ---------------------------------------------------------------------------------


def fmt_ms(value: float) -> str:
    return "—" if value != value else f"{value:.0f}"  # NaN -> dash


def one_line(phase: Phase) -> str:
    s = phase.summary()
    extra = (
        f"passive {s['passive']}, success {s['success']}, pushes {s['pushes']}"
        if phase.channel == "wechat"
        else f"answered {s['answered']}"
    )
    return (
        f"p50 {fmt_ms(s['p50_ms'])} p95 {fmt_ms(s['p95_ms'])} p99 {fmt_ms(s['p99_ms'])} "
        f"max {fmt_ms(s['max_ms'])} ms; errors {s['errors']}; {extra}; "
        f">=5 s {s['over_5s']}; load {phase.load_after}"
    )


def highest_rate_under(phases: list[Phase], channel: str, target_ms: float) -> str:
    """Highest rate at which p99 < target, provided every lower rate passed too."""
    best = None
    for phase in sorted((p for p in phases if p.channel == channel), key=lambda p: p.rate):
        if phase.p(99) < target_ms and phase.count("error") == 0:
            best = phase.rate
        else:
            break
    return "none of the rates" if best is None else f"{best:g} msg/s"


def report(
    args: argparse.Namespace, started: str, load_at_start: str, model: Path, phases: list[Phase]
) -> str:
    rows = []
    for phase in sorted(phases, key=lambda p: (p.rate, p.channel != "wechat")):
        s = phase.summary()
        cpu = s["cpu_ms_per_message"]
        wechat = phase.channel == "wechat"
        rows.append(
            [
                f"{phase.rate:g}" + (f" ({phase.rate / 2:g} each)" if args.interleave else ""),
                "WeChat" if wechat else "REST",
                s["sent"],
                fmt_ms(s["p50_ms"]),
                fmt_ms(s["p95_ms"]),
                fmt_ms(s["p99_ms"]),
                fmt_ms(s["max_ms"]),
                s["errors"],
                f"{s['passive']} / {s['success']}" if wechat else "—",
                f"{s['pushes']} / {s['pushes_expected']}" if wechat else "—",
                (f"{fmt_ms(s['push_p50_ms'])} / {fmt_ms(s['push_max_ms'])}" if wechat else "—"),
                s["over_5s"],
                f"{cpu.get('rasa', float('nan')):.0f} + {cpu.get('actions', float('nan')):.0f}",
                f"{s['max_lag_ms']:.0f}",
                phase.load_after,
            ]
        )
    table = markdown_table(
        [
            "rate (msg/s)",
            "channel",
            "messages",
            "p50 (ms)",
            "p95 (ms)",
            "p99 (ms)",
            "max (ms)",
            "errors",
            "passive / `success`",
            "pushes arrived / expected",
            "push delay p50 / max (ms)",
            "≥ 5 s",
            "CPU ms/msg (rasa + actions)",
            "send lag max (ms)",
            "load avg after",
        ],
        rows,
    )

    ratio_rows = []
    for rate in args.rates:
        wx = next((p for p in phases if p.channel == "wechat" and p.rate == rate), None)
        rest = next((p for p in phases if p.channel == "rest" and p.rate == rate), None)
        if wx is None or rest is None:
            continue
        cpu_wx = wx.cpu.get("rasa", 0) / max(wx.cpu_messages, 1)
        cpu_rest = rest.cpu.get("rasa", 0) / max(rest.cpu_messages, 1)
        ratio_rows.append(
            [
                f"{rate:g}",
                _ratio(wx.p(50), rest.p(50)),
                _ratio(wx.p(95), rest.p(95)),
                _ratio(wx.p(99), rest.p(99)),
                "— (shared)" if args.interleave else _ratio(cpu_wx, cpu_rest),
            ]
        )
    ratios = markdown_table(
        ["rate (msg/s)", "p50", "p95", "p99", "Rasa CPU per message"], ratio_rows
    )
    over_5s = sum(p.over(WECHAT_DEADLINE_SECONDS * 1000) for p in phases if p.channel == "wechat")
    lost = sum(max(p.pushes_expected - len(p.pushes), 0) for p in phases if p.channel == "wechat")
    invalid = sum(p.invalid_replies for p in phases)
    rates = ",".join(f"{r:g}" for r in args.rates)
    command = f"{COMMAND} --rates {rates} --duration {args.duration:g}"
    if args.quick:
        command = f"{COMMAND} --quick"
    if args.interleave:
        command += " --interleave"
    if args.max_concurrent_turns is not None:
        command += f" --max-concurrent-turns {args.max_concurrent_turns}"
    if args.interleave:
        mode = (
            f"One phase of {args.duration:g} s per rate: WeChat and REST messages alternate"
            " (the same conversations on both), each channel at half the rate, so both see"
            " the same moment of the machine's contention."
        )
        cpu_note = " (both channels together: one figure per phase)"
        rate_note = " (server total)"
    else:
        mode = (
            f"{args.duration:g} s per rate and channel, one channel at a time; the order of"
            " the two channels alternates from rate to rate."
        )
        cpu_note = rate_note = ""
    bound = (
        f"max_concurrent_turns {args.max_concurrent_turns}"
        if args.max_concurrent_turns is not None
        else f"max_concurrent_turns {DEFAULT_MAX_CONCURRENT_TURNS} (the default)"
    )
    return f"""
Latest run: {started}, `{command}`.
Machine: {machine_line()}.
Load average (1/5/15 min) at start: {load_at_start}. The 2 cores are shared with the
other engineers' training runs and tests, and the load generator (this script, one
Python process) runs on them too: treat the figures as upper bounds, and compare the
two channels within one rate rather than across runs.

Setup: one Rasa server (`rasa run`, endpoints.yml: SQLite tracker store, in-memory lock
store) and the action server, model `{model.name}`, fresh SQLite files. WeChat channel
in safe mode (AES; bodies built, signed and encrypted beforehand, replies verified and
decrypted afterwards as WeChat does), reply deadline 4 s (the default), {bound},
customer-service API on a fake on 127.0.0.1. Open loop: message k is sent at
start + k / rate, whatever happened to earlier ones, and its latency counts from that
scheduled time (so a slow load generator shows up as latency; "send lag" says how late
requests left). The client keeps connections alive (aiohttp's default).
{args.residents} residents take turns, each in one of {len(CONVERSATIONS)} conversations
(greeting, heating report with address and confirmation, parking report, certificate
question, noise report declined, out of scope, asking for a person, thanks, goodbye),
fresh sender ids per phase. {mode} Client timeouts: WeChat
{WECHAT_CLIENT_TIMEOUT:g} s (WeChat itself gives up at 5 s), REST {REST_CLIENT_TIMEOUT:g} s;
a timeout counts as an error.

{table}

- Latency is the HTTP response time. For WeChat, "passive / `success`" splits the
  replies: passive = the answer in the response (encrypted XML); `success` = the
  deadline passed, the answer went out later through the customer-service API
  ("pushes", delay counted from the scheduled send).
- "≥ 5 s": responses WeChat would not have waited for (the resident would see
  "该公众号暂时无法提供服务"). Over all WeChat phases: **{over_5s}**; late answers that
  never arrived: {lost}; passive replies WeChat would reject: {invalid}.
- CPU ms/msg: user + system CPU of the Rasa server and the action server during the
  phase (including draining late answers), per message sent{cpu_note}.

WeChat / REST at the same rate (1.00 = same cost; the issue allows 1.10):

{ratios}

Highest rate{rate_note} with p99 under 1 s (and no errors, all lower rates too):
WeChat **{highest_rate_under(phases, "wechat", P99_TARGET_MS)}**,
REST **{highest_rate_under(phases, "rest", P99_TARGET_MS)}**.
"""


SUBSECTIONS = {
    False: "Each channel alone, one after the other",
    True: "Both channels at once, interleaved",
}
SECTION_INTRO = f"""
`{COMMAND}` (about 12 minutes; `--interleave` about 7, `--quick` a smoke run of 3).
The issue's bar: at the same rate the WeChat channel costs at most 10 % more than
Rasa's REST channel, and no WeChat reply misses the 5-second deadline (a late answer
goes out through the customer-service API instead). The first two subsections are the
latest run of each mode, rewritten by the script; others are kept as they are.
"""


def readme_section(interleave: bool, body: str) -> str:
    """The section's text: this run's subsection, the other mode's kept from README."""
    text = README.read_text("utf-8") if README.exists() else ""
    found = re.search(rf"^## {re.escape(SECTION)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    parts: dict[str, str] = {}
    if found:
        for match in re.finditer(r"^### (.+?)\n(.*?)(?=^### |\Z)", found.group(1), re.S | re.M):
            parts[match.group(1).strip()] = match.group(2).strip()
    parts[SUBSECTIONS[interleave]] = body.strip()
    # The two modes first, then any other subsection (notes written by hand) as it was.
    ordered = [title for title in SUBSECTIONS.values() if title in parts]
    ordered += [title for title in parts if title not in SUBSECTIONS.values()]
    return (
        SECTION_INTRO.strip()
        + "\n\n"
        + "\n\n".join(f"### {title}\n\n{parts[title]}" for title in ordered)
    )


def _ratio(ours: float, theirs: float) -> str:
    if not theirs or theirs != theirs or ours != ours:
        return "—"
    return f"{ours / theirs:.2f}"


def parse_rates(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or any(not 0 < r <= MAX_RATE for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be in (0, {MAX_RATE:g}]")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=parse_rates, default=[5.0, 10.0, 20.0, 40.0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,10 msg/s, 15 s")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="both channels in one phase per rate, alternating, at rate / 2 each",
    )
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between phases")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="max seconds to wait for late answers"
    )
    parser.add_argument("--model", type=Path, help="default: the model of the current inputs")
    parser.add_argument(
        "--max-concurrent-turns",
        type=int,
        help="the WeChat channel's bound on Rasa turns at once (0: none; default: the code's)",
    )
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument("--readme", action="store_true", help="update README (quick runs too)")
    readme.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.duration = [5.0, 10.0], 15.0
    if not 1 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration must be between 1 and {MAX_DURATION:g}")
    if not 1 <= args.residents <= 10_000:
        parser.error("--residents must be between 1 and 10000")
    if any(rate * args.duration > MAX_MESSAGES for rate in args.rates):
        parser.error(f"at most {MAX_MESSAGES} messages per phase")
    if args.max_concurrent_turns is not None and not 0 <= args.max_concurrent_turns <= 1000:
        parser.error("--max-concurrent-turns must be between 0 and 1000")
    if not 0 <= args.drain <= 900 or not 0 <= args.pause <= 120:
        parser.error("--drain at most 900 s, --pause at most 120 s")

    os.chdir(PROJECT_ROOT)
    os.environ.update(OFFLINE_ENV)
    logging.basicConfig(level=logging.WARNING)
    model = (args.model or launcher.ensure_model()).resolve()
    started, load_at_start = now_text(), load_average()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="webhook-load-") as tmp:
        phases = asyncio.run(measure(args, model, Path(tmp)))

    body = report(args, started, load_at_start, model, phases)
    print("\n" + body)
    if args.readme or not (args.quick or args.no_readme):
        update_readme_section(SECTION, readme_section(args.interleave, body))
        print(f"README section updated: {SECTION}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"webhook-load-{run_id}.json"
    payload = {
        "started": started,
        "load_at_start": load_at_start,
        "machine": machine_line(),
        "model": str(model),
        "args": {k: v for k, v in vars(args).items()},
        "phases": [
            {
                "summary": phase.summary(),
                "outcomes": [
                    {k: v for k, v in asdict(o).items() if k != "body"} for o in phase.outcomes
                ],
                "push_delays_ms": phase.pushes,
            }
            for phase in phases
        ],
    }
    raw.write_text(json.dumps(payload, ensure_ascii=False, indent=1, default=str), "utf-8")
    print(f"Raw results: {raw.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
