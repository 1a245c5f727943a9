"""The WeChat webhook with 1, 2 and 4 Rasa servers behind HAProxy (`make run-scale`).

    .venv/bin/python benchmarks/webhook_scale.py                       # 1,2,4 servers
    .venv/bin/python benchmarks/webhook_scale.py --servers 1,2 --duration 30
    .venv/bin/python benchmarks/webhook_scale.py --rates 10,20 --clients 8

For each number of Rasa servers: the scaled set-up of bot.scale (HAProxy from
Debian's package, Rasa servers on endpoints.scale.yml's tracker, lock and event
stores, the conversation-log writer, one action server) on free ports of
127.0.0.1, PostgreSQL (a fresh database on TEST_DATABASE_URL's server) and Redis
(TEST_REDIS_URL's database, emptied first: it is the benchmark's own), every Rasa
server started with the model (no model server: the web app is not on the
measured path). The WeChat side is benchmarks/webhook_load.py's: signed, encrypted
requests built beforehand, the five conversations of residents (reports with
addresses and confirmations: custom actions, tickets), a fake customer-service
API for answers past the 4-s deadline.

Two loads per set-up, WeChat channel only:
- closed loop: `--clients` residents' phones at once, each sending its next
  message when the answer came (throughput = answered messages / duration);
- open loop: messages at fixed `--rates` whatever happened to earlier ones
  (webhook_load's phases; latency counted from the scheduled time).

Per phase: throughput, p50/p99, errors, answers past the deadline, and the CPU
time per message of all server processes (/proc/<pid>/stat) with the load average.
Figures go to benchmarks/README.md ("WeChat webhook scaled out") and
benchmarks/results/webhook-scale-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from bench_common import (
    OFFLINE_ENV,
    PROJECT_ROOT,
    RESULTS_DIR,
    cpu_seconds,
    free_port,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    update_readme_section,
)
from message_cost import fresh_database
from webhook_load import (
    AES_KEY,
    APP_SECRET,
    APPID,
    CONVERSATIONS,
    TOKEN,
    FakeWeChatApi,
    Outcome,
    Phase,
    Stack,
    build_requests,
    count_invalid,
    run_phase,
    send_one,
    warm_up,
)

from bot import launcher, scale
from bot.channels.wechat_crypto import WXBizMsgCrypt
from bot.settings import load_settings

SECTION = "WeChat webhook scaled out"
COMMAND = ".venv/bin/python benchmarks/webhook_scale.py"


class ScaledStack(Stack):
    """webhook_load's Stack on the scaled set-up: CPU summed per kind of process."""

    def cpu_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for service in self.services:
            if service.process is not None:
                kind = service.name.rstrip("0123456789")
                out[kind] = out.get(kind, 0.0) + cpu_seconds(service.process.pid)
        return out


def bench_endpoints(workdir: Path) -> Path:
    """endpoints.scale.yml without the model server: each Rasa server gets --model."""
    endpoints = yaml.safe_load((PROJECT_ROOT / scale.SCALE_ENDPOINTS).read_text("utf-8"))
    endpoints.pop("models", None)
    path = workdir / "endpoints.bench.yml"
    path.write_text(yaml.safe_dump(endpoints, allow_unicode=True), "utf-8")
    return path


@contextmanager
def scaled_stack(
    servers: int, model: Path, workdir: Path, api_base: str, database_url: str, redis_url: str
) -> Iterator[ScaledStack]:
    import redis
    from sqlalchemy.engine import make_url

    haproxy = scale.find_haproxy()
    if haproxy is None:
        raise SystemExit("HAProxy is not installed (make haproxy-deps)")
    redis.Redis.from_url(redis_url).flushdb()  # the benchmark's own database
    parsed = make_url(redis_url)
    layout = scale.ScaleLayout(
        rasa_port=free_port(),
        actions_port=free_port(),
        web_port=free_port(),
        rasa_servers=tuple(free_port() for _ in range(servers)),
        action_servers=(free_port(),),
        web_apps=(free_port(),),
    )
    settings = replace(
        load_settings(),
        database_url=database_url,
        tracker_database_url=database_url,
        rasa_port=layout.rasa_port,
        actions_port=layout.actions_port,
        web_port=layout.web_port,
        redis_url=redis_url,
        redis_host=parsed.host or "127.0.0.1",
        redis_port=parsed.port or 6379,
        redis_db=int(parsed.database or 0),
        rasa_auth_token=None,
        wechat_token=TOKEN,
        wechat_appid=APPID,
        wechat_aes_key=AES_KEY,
        wechat_app_secret=APP_SECRET,
        wechat_api_base=api_base,
    )
    env = scale.scale_environment(settings, layout)
    env.update(
        {
            **OFFLINE_ENV,
            "DATABASE_URL": database_url,
            "WECOM_API_BASE": "http://127.0.0.1:9",  # nothing leaves the machine
            "LOG_LEVEL": "WARNING",
        }
    )
    env.pop("RASA_AUTH_TOKEN", None)
    launcher.prepare_database(env)
    config = workdir / "haproxy.cfg"
    config.write_text(scale.haproxy_config(layout), encoding="utf-8")
    endpoints = str(bench_endpoints(workdir))
    services = []
    for service in scale.scale_services(settings, layout, haproxy, config):
        if service.name.startswith("web") or service.name == "escalation":
            continue  # not on the measured path (and the model comes with --model)
        if service.name.startswith("rasa"):
            command = [endpoints if a == scale.SCALE_ENDPOINTS else a for a in service.command]
            service.command = [*command, "--model", str(model)]
        services.append(service)
    log = workdir / "servers.log"
    with log.open("wb") as output:
        try:
            for service in services:
                service.process = subprocess.Popen(
                    service.command,
                    cwd=PROJECT_ROOT,
                    env={**env, **service.env},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            for service in services:
                if service.health_url:
                    launcher.wait_healthy(service.health_url, 900, service.process)
            yield ScaledStack(f"http://127.0.0.1:{layout.rasa_port}", services, log)
        finally:
            launcher.stop(services)


async def closed_loop(
    stack: ScaledStack, crypto: WXBizMsgCrypt, clients: int, duration: float, tag: str
) -> Phase:
    """`clients` residents at a time, each sending its next message on an answer."""
    loop = asyncio.get_running_loop()
    residents = clients * 4
    per_resident = 60  # far more than fit in the duration
    requests = {
        r: build_requests(
            f"{tag}{r:03d}",
            [("wechat", r, CONVERSATIONS[r % len(CONVERSATIONS)][t % len(CONVERSATIONS[r % 5])])
             for t in range(per_resident)],
            crypto,
        )
        for r in range(residents)
    }  # fmt: skip
    # every request needs a MsgId of its own across residents
    for r, plan in requests.items():
        for request in plan:
            request.index = r * per_resident + request.index
    outcomes: list[Outcome] = []
    load_before, cpu_before = load_average(), stack.cpu_seconds()
    print(f"  closed loop, {clients} clients x {duration:g} s", flush=True)
    connector = aiohttp.TCPConnector(limit=clients * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        end = loop.time() + duration

        async def client(number: int) -> None:
            # a client moves through its residents round-robin, one message each
            mine = [r for r in range(residents) if r % clients == number]
            turn = 0
            while loop.time() < end:
                resident = mine[turn % len(mine)]
                plan = requests[resident]
                request = plan[(turn // len(mine)) % len(plan)]
                outcomes.append(await send_one(session, stack.rasa_url, request, loop.time()))
                turn += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
    cpu_after = stack.cpu_seconds()
    phase = Phase(
        "wechat",
        len(outcomes) / duration,
        duration,
        len(outcomes),
        outcomes,
        {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after},
        load_before,
        load_average(),
        cpu_messages=len(outcomes),
    )
    phase.invalid_replies = count_invalid(outcomes, crypto)
    for outcome in outcomes:
        outcome.body = b""
    return phase


@dataclass
class Row:
    servers: int
    mode: str  # "closed, 8 clients" / "open, 20 msg/s"
    phase: Phase

    def summary(self) -> dict[str, Any]:
        return {"servers": self.servers, "mode": self.mode, **self.phase.summary()}


async def measure_servers(
    servers: int, args: argparse.Namespace, model: Path, workdir: Path
) -> list[Row]:
    api = FakeWeChatApi()
    await api.start()
    crypto = WXBizMsgCrypt(TOKEN, AES_KEY, APPID)
    rows: list[Row] = []
    try:
        with fresh_database(args.database_url, f"scale{servers}") as database_url:
            with scaled_stack(
                servers, model, workdir, api.url, database_url, args.redis_url
            ) as stack:
                print(f"{servers} Rasa server(s) up; load {load_average()}", flush=True)
                for _ in range(servers):  # HAProxy round robin: each server warms up
                    await warm_up(stack, crypto)
                await asyncio.sleep(2.0)
                phase = await closed_loop(stack, crypto, args.clients, args.duration, f"c{servers}")
                rows.append(Row(servers, f"closed, {args.clients} clients", phase))
                print("    " + line(rows[-1]), flush=True)
                for number, rate in enumerate(args.rates):
                    await asyncio.sleep(args.pause)
                    done = await run_phase(
                        stack,
                        api,
                        crypto,
                        ("wechat",),
                        rate,
                        args.duration,
                        args.residents,
                        f"o{servers}{number}",
                        args.drain,
                    )
                    rows.append(Row(servers, f"open, {rate:g} msg/s", done[0]))
                    print("    " + line(rows[-1]), flush=True)
    finally:
        await api.stop()
    return rows


def fmt(value: float, digits: int = 0) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def line(row: Row) -> str:
    s = row.summary()
    return (
        f"{row.mode}: {len(row.phase.outcomes) / row.phase.duration:.1f} msg/s, "
        f"p50 {fmt(s['p50_ms'])} p99 {fmt(s['p99_ms'])} ms, errors {s['errors']}, "
        f"success {s['success']}, >=5 s {s['over_5s']}, load {row.phase.load_after}"
    )


def cpu_cell(phase: Phase) -> str:
    per = {k: v * 1000 / max(phase.cpu_messages, 1) for k, v in phase.cpu.items()}
    total = sum(per.values())
    parts = " + ".join(
        f"{per[k]:.0f}" for k in ("rasa", "actions", "conversation-log", "haproxy") if k in per
    )
    return f"{total:.0f} ({parts})"


def report(args: argparse.Namespace, started: str, load: str, model: Path, rows: list[Row]) -> str:
    table = []
    for row in rows:
        s = row.summary()
        answered = len(row.phase.outcomes) - s["errors"]
        table.append(
            [
                row.servers,
                row.mode,
                s["sent"],
                fmt(answered / row.phase.duration, 1),
                fmt(s["p50_ms"]),
                fmt(s["p95_ms"]),
                fmt(s["p99_ms"]),
                s["errors"],
                f"{s['passive']} / {s['success']}",
                f"{s['pushes']} / {s['pushes_expected']}",
                s["over_5s"],
                cpu_cell(row.phase),
                f"{row.phase.load_before} → {row.phase.load_after}",
            ]
        )
    rates = ",".join(f"{r:g}" for r in args.rates)
    servers = ",".join(str(n) for n in args.servers)
    command = (
        f"{COMMAND} --servers {servers} --clients {args.clients} --rates {rates}"
        f" --duration {args.duration:g}"
    )
    return f"""
Latest run: {started}, `{command}`, model `{model.name}`.
Machine: {machine_line()}.
Load average (1/5/15 min) at start: {load}. The 2 cores are shared with other people's
jobs and with the load generator (one Python process): wall times are upper bounds.

Setup per row group: `make run-scale`'s layout (bot.scale) with N Rasa servers on
endpoints.scale.yml (tracker, lock and event stores), one action server, the
conversation-log writer, HAProxy (round robin, health checks), PostgreSQL (a fresh
database) and Redis on 127.0.0.1; each Rasa server warmed up through the five
conversations first. WeChat channel in safe mode, requests signed and encrypted
beforehand (benchmarks/webhook_load.py), reply deadline 4 s, answers past it through a
fake customer-service API. Closed loop: {args.clients} residents' phones at once, each
sending its next message when the answer came ({args.clients * 4} residents in turn,
report flows with actions). Open loop: a message every 1/rate s whatever happened
before, {args.residents} residents; latency from the scheduled time. {args.duration:g} s per
phase.

{markdown_table(
    [
        "Rasa servers", "load", "messages", "answered msg/s", "p50 (ms)", "p95 (ms)",
        "p99 (ms)", "errors", "passive / `success`", "pushes arrived / expected", "≥ 5 s",
        "CPU ms/msg, all processes (rasa + actions + log writer + haproxy)",
        "load avg before → after",
    ],
    table,
)}

- "answered msg/s": responses (passive reply or `success`) per second of the phase;
  a `success` is an answer that went out later through the customer-service API.
- CPU ms/msg: user + system CPU of every server process during the phase, per
  message; the Rasa servers' figure is their sum.
"""  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="1,2,4")
    parser.add_argument("--clients", type=int, default=8, help="closed loop: phones at once")
    parser.add_argument("--rates", default="10,20,30", help="open loop: msg/s")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--drain", type=float, default=60.0)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL"))
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    args.servers = [int(n) for n in args.servers.split(",") if n]
    args.rates = [float(r) for r in args.rates.split(",") if r]
    if not (args.database_url or "").startswith("postgresql") or not args.redis_url:
        parser.error("needs PostgreSQL and Redis: --database-url/TEST_DATABASE_URL, --redis-url")
    if any(not 1 <= n <= 8 for n in args.servers) or not 1 <= args.clients <= 64:
        parser.error("--servers 1..8 each, --clients 1..64")
    if any(not 0 < r <= 100 for r in args.rates) or not 5 <= args.duration <= 600:
        parser.error("--rates in (0, 100], --duration 5..600")

    os.chdir(PROJECT_ROOT)
    os.environ.update(OFFLINE_ENV)
    model = (args.model or launcher.ensure_model()).resolve()
    started, load = now_text(), load_average()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    rows: list[Row] = []
    for servers in args.servers:
        with tempfile.TemporaryDirectory(prefix="webhook-scale-") as tmp:
            rows += asyncio.run(measure_servers(servers, args, model, Path(tmp)))
    body = report(args, started, load, model, rows)
    print(body)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"webhook-scale-{run_id}.json"
    raw.write_text(
        json.dumps(
            {
                "started": started,
                "load_at_start": load,
                "machine": machine_line(),
                "model": str(model),
                "rows": [
                    row.summary()
                    | {"outcomes": [asdict(o) | {"body": ""} for o in row.phase.outcomes]}
                    for row in rows
                ],
            },
            ensure_ascii=False,
            indent=1,
            default=str,
        ),
        "utf-8",
    )
    print(f"Raw results: {raw.relative_to(PROJECT_ROOT)}")
    if not args.no_readme:
        update_readme_section(SECTION, body)
        print(f"README section updated: {SECTION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
