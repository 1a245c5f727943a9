"""The web app under 10,000 tickets: Open311 requests.json and the workers' inbox.

    .venv/bin/python benchmarks/web_benchmark.py              # 10,000 tickets, 50 calls each
    .venv/bin/python benchmarks/web_benchmark.py --calls 20   # quicker

Target (from the issue; measured here, not asserted in tests): with 10,000
tickets in a SQLite database, GET /open311/v2/requests.json answers in < 300 ms
(p95), with the default window and with filters. The XML renderings and the
request updates (servicerequestupdates) are timed beside them.

How: a fresh SQLite file (migrated, demo directory, 10,000 tickets bulk-loaded
over 180 days with their events by tickets_benchmark.insert_tickets, so the
default 90-day window holds ~5,000 and the 1,000 cap applies), the real web
app (`python -m bot web`) started as its own process on a free port of
127.0.0.1, and one client in this process calling it one request at a time
over a kept-alive connection: 3 warm-up calls, then `--calls` timed calls per
case (wall time until the whole body is read). The worker inbox (GET /) is
timed the same way after logging in through /login as a grid worker (王芳,
HPXC-01) and as the admin.

Figures go to benchmarks/README.md ("Web app") and benchmarks/results/web-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from bench_common import (
    PROJECT_ROOT,
    RESULTS_DIR,
    cpu_seconds,
    free_port,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    offline_environment,
    percentile,
    update_readme_section,
)
from sqlalchemy import select, text
from tickets_benchmark import insert_tickets, random_specs

from bot.routing.directory import apply_directory, load_directory_file
from bot.settings import get_settings
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.store.models import Ticket

COMMAND = ".venv/bin/python benchmarks/web_benchmark.py"
README_TITLE = "Web app"
TARGET_MS = 300.0
DAYS = 180
SENDERS = 2000
WORKER_PHONE = "13800000001"  # 王芳, HPXC-01 in data/grids/jinan-demo.yml
WORKER_PASSWORD = "bench-worker-pass-2026"
ADMIN_PASSWORD = "bench-admin-pass-2026"
DEMO_FILE = PROJECT_ROOT / "data" / "grids" / "jinan-demo.yml"


# -- the database ---------------------------------------------------------------------


def prepare_database(url: str, tickets: int) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        with session_scope(engine) as session:
            apply_directory(session, load_directory_file(DEMO_FILE))
        specs = random_specs(tickets, random.Random(42), SENDERS, DAYS)
        seconds = insert_tickets(engine, specs)
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM tickets")).scalar_one()
            events = connection.execute(text("SELECT count(*) FROM ticket_events")).scalar_one()
        with session_scope(engine, readonly=True) as session:
            numbers = session.execute(select(Ticket.number).order_by(Ticket.id)).scalars().all()
    finally:
        engine.dispose()
    return {"seconds": seconds, "tickets": count, "events": events, "numbers": list(numbers)}


def set_worker_password(url: str) -> None:
    """The demo directory's workers have no password; give 王芳 one."""
    from bot.accounts import set_password

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            set_password(session, WORKER_PHONE, WORKER_PASSWORD)
    finally:
        engine.dispose()


# -- the server -----------------------------------------------------------------------


class WebServer:
    """`python -m bot web` on a free port of 127.0.0.1, with its own environment."""

    def __init__(self, workdir: Path, url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "web.log").open("w")
        env = offline_environment()
        env.update(
            DATABASE_URL=url,
            TRACKER_DATABASE_URL=f"sqlite:///{workdir / 'conversations.db'}",
            WEB_PORT=str(self.port),
            WEB_HOST="127.0.0.1",
            WEB_SECRET_KEY="web-benchmark",
            ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "web"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"web app exited with {self.process.returncode}")
                try:
                    async with client.get(self.base + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError("web app did not answer /healthz")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# -- timing -----------------------------------------------------------------------------


Call = Callable[[], Awaitable[tuple[int, bytes]]]


SERVER_PID: int | None = None  # set once the server runs; its CPU time is reported


async def time_calls(call: Call, calls: int, warmup: int = 3) -> dict[str, Any]:
    """Wall time per call, and the server's CPU time per call (robust to other
    load on the machine: it counts only what the server itself computed)."""
    for _ in range(warmup):
        status, body = await call()
        if status != 200:
            raise RuntimeError(f"status {status}: {body[:300]!r}")
    times = []
    size = 0
    cpu_before = cpu_seconds(SERVER_PID) if SERVER_PID else None
    for _ in range(calls):
        started = time.perf_counter()
        status, body = await call()
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"status {status}: {body[:300]!r}")
        size = len(body)
    cpu = None
    if cpu_before is not None and SERVER_PID:
        cpu = (cpu_seconds(SERVER_PID) - cpu_before) * 1000 / calls
    return {
        "server_cpu_ms": cpu,
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "max": max(times),
        "calls": calls,
        "bytes": size,
        "body": body,
    }


def summary(measured: dict[str, Any]) -> str:
    return f"p50 {measured['p50']:.1f} ms, p95 {measured['p95']:.1f} ms"


def getter(client: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None) -> Call:
    async def call() -> tuple[int, bytes]:
        async with client.get(url, params=params) as response:
            return response.status, await response.read()

    return call


def local_iso(days_ago: float) -> str:
    moment = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return moment.astimezone(ZoneInfo(get_settings().timezone)).isoformat(timespec="seconds")


async def bench_open311(base: str, numbers: list[str], calls: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    some = rng.sample(numbers, 20)
    requests = "/requests.json"
    window = {"start_date": local_iso(37), "end_date": local_iso(30), "status": "closed"}
    cases: list[tuple[str, str, dict[str, str] | None]] = [
        ("requests.json, default window (last 90 days, capped at 1,000)", requests, None),
        ("requests.json?status=open", requests, {"status": "open"}),
        ("requests.json?service_code=HEATING,NOISE", requests, {"service_code": "HEATING,NOISE"}),
        ("requests.json, a 7-day window + status=closed", requests, window),
        (
            "requests.json?service_request_id= 20 ids",
            requests,
            {"service_request_id": ",".join(some)},
        ),
        (
            "requests.json?page_size=100&page=3 (extension)",
            requests,
            {"page_size": "100", "page": "3"},
        ),
        ("requests/{id}.json", f"/requests/{some[0]}.json", None),
        ("services.json", "/services.json", None),
        # the same answers rendered as XML (the specification's first format)
        ("requests.xml, default window (last 90 days, capped at 1,000)", "/requests.xml", None),
        ("services.xml", "/services.xml", None),
        # request updates (mySociety's extension): every status change and note
        (
            "servicerequestupdates.xml, default window (capped at 1,000)",
            "/servicerequestupdates.xml",
            None,
        ),
        (
            "servicerequestupdates.json, a 1-day window",
            "/servicerequestupdates.json",
            {"start_date": local_iso(31), "end_date": local_iso(30)},
        ),
    ]
    results = []
    async with aiohttp.ClientSession() as client:
        for name, path, params in cases:
            measured = await time_calls(getter(client, base + "/open311/v2" + path, params), calls)
            body = measured.pop("body")
            items = len(ET.fromstring(body)) if path.endswith(".xml") else len(json.loads(body))
            results.append({"case": name, "items": items, **measured})
            print(
                f"  {name}: p50 {measured['p50']:.1f} ms, p95 {measured['p95']:.1f} ms", flush=True
            )
    return results


async def bench_post(base: str, token: str, calls: int) -> dict[str, Any]:
    counter = iter(range(10**6))

    async def call() -> tuple[int, bytes]:
        n = next(counter)
        data = {
            "api_key": token,
            "service_code": "HEATING",
            "address_string": f"和平新村{n % 14 + 1}号楼",
            "description": f"基准测试 {n}：暖气不热",
            "phone": "13900000000",
        }
        async with client.post(base + "/open311/v2/requests.json", data=data) as response:
            return response.status, await response.read()

    async with aiohttp.ClientSession() as client:
        measured = await time_calls(call, calls)
    measured.pop("body")
    return {"case": "POST requests.json (address_string, contact note)", "items": 1, **measured}


def create_api_key(url: str) -> str:
    from bot.apikeys import create_key

    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            return create_key(session, "web benchmark").token
    finally:
        engine.dispose()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def logged_in_client(base: str, phone: str, password: str) -> aiohttp.ClientSession:
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with client.get(base + "/login") as response:
        page = await response.text()
    match = _CSRF.search(page)
    if match is None:
        await client.close()
        raise RuntimeError("no CSRF field on /login")
    form = {"phone": phone, "password": password, "csrf_token": match.group(1)}
    async with client.post(base + "/login", data=form, allow_redirects=False) as response:
        if response.status not in (302, 303):
            await client.close()
            raise RuntimeError(f"login as {phone} failed: {response.status}")
    return client


async def bench_inbox(base: str, calls: int) -> list[dict[str, Any]]:
    results = []
    for who, phone, password in (
        ("grid worker 王芳 (HPXC-01)", WORKER_PHONE, WORKER_PASSWORD),
        ("admin (every ticket)", "admin", ADMIN_PASSWORD),
    ):
        client = await logged_in_client(base, phone, password)
        try:
            measured = await time_calls(getter(client, base + "/"), calls)
        finally:
            await client.close()
        page = measured.pop("body").decode("utf-8", "replace")
        rows = len(re.findall(r'href="/tickets/\d{8}-\d{4}"', page))
        results.append({"case": f"GET / (inbox), {who}", "items": rows, **measured})
        print(
            f"  inbox {who}: p50 {measured['p50']:.1f} ms, p95 {measured['p95']:.1f} ms", flush=True
        )
    return results


# -- report -----------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    rows = [
        [
            r["case"],
            r["items"],
            f"{r['bytes'] / 1024:.0f} KiB",
            f"{r['p50']:.1f}",
            f"{r['p95']:.1f}",
            f"{r['max']:.1f}",
            f"{r['server_cpu_ms']:.1f}" if r.get("server_cpu_ms") is not None else "—",
            ("**yes**" if r["p95"] < TARGET_MS else "**no**") if r.get("target") else "—",
        ]
        for r in results["cases"]
    ]
    table = markdown_table(
        [
            "case",
            "items",
            "body",
            "p50 (ms)",
            "p95 (ms)",
            "max (ms)",
            "server CPU per call (ms)",
            f"p95 < {TARGET_MS:.0f} ms",
        ],
        rows,
    )
    db = results["database"]
    targeted = [r for r in results["cases"] if r.get("target")]
    worst = max(targeted, key=lambda r: r["p95"])
    met = worst["p95"] < TARGET_MS
    verdict = (
        f"Target (requests.json p95 < {TARGET_MS:.0f} ms with 10,000 tickets): "
        + ("**met**" if met else "**not met**")
        + f"; slowest case `{worst['case']}` at p95 {worst['p95']:.0f} ms."
    )
    lines = [
        f"Latest run: {results['when']}, `{results['command']}`.",
        f"Machine: {results['machine']}.",
        f"Load average (1/5/15 min) at start: {results['load_start']}; at the end: "
        f"{results['load_end']} (other work shared the cores: treat times as upper bounds).",
        "",
        f"Data: one SQLite file, demo directory, {db['tickets']:,} tickets with "
        f"{db['events']:,} events bulk-loaded over {DAYS} days ({db['seconds']:.1f} s; "
        "`tickets_benchmark.insert_tickets`). Server: `python -m bot web` as its own "
        "process on 127.0.0.1; client: aiohttp in the benchmark process, one request at "
        f"a time over a kept-alive connection, 3 warm-up calls then {results['calls']} "
        "timed calls per case (until the body is read).",
        "",
        verdict,
        "",
        table,
        "",
        "- The default window holds about half of the tickets, so the 1,000-request cap "
        "of the specification applies: that case builds and sends the largest answer.",
        "- Server CPU per call is the web process's own CPU time (/proc) over the timed "
        "calls divided by their number: what one answer costs, whatever else the machine "
        "runs. Wall times above it are waiting for a core.",
        "- One SQL statement picks the page of tickets (newest first) and their latest "
        "handler notes (a correlated subquery on `ix_ticket_events_ticket`, run for the "
        "answered tickets only); up to four small queries fetch the names of the grids, "
        "communities, streets and workers they refer to. Rows become NamedTuples, not ORM "
        "objects (the first version, ORM objects with joined loads, took ~510 ms p50 "
        "for a 1,000-request answer on the same, equally loaded machine).",
        "- POST opens real tickets (routing, number, events, contact note, WeCom outbox row) "
        "in the same file: the write path's figure, not part of the target.",
        "- The inbox shows at most 200 tickets (bot/tickets/queries.py), so the worker's "
        "and the admin's pages are about the same size.",
    ]
    if results.get("inbox_note"):
        lines += ["", results["inbox_note"]]
    lines += ["", f"Raw figures: `benchmarks/results/{results['results_file']}` (not committed)."]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    global SERVER_PID
    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="web-bench-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'neighbourhood.db'}"
        print(f"loading {args.tickets:,} tickets ...", flush=True)
        database = prepare_database(url, args.tickets)
        numbers = database.pop("numbers")
        token = create_api_key(url)
        inbox_note = None
        try:
            set_worker_password(url)
        except Exception as exc:  # the worker pages may change under us
            inbox_note = f"Inbox not measured: could not set a worker password ({exc})."
        server = WebServer(workdir, url)
        try:
            await server.wait_ready()
            SERVER_PID = server.process.pid
            print("Open311:", flush=True)
            cases = [
                {**case, "target": case["case"].startswith("requests.json")}
                for case in await bench_open311(server.base, numbers, args.calls)
            ]
            cases.append(await bench_post(server.base, token, args.calls))
            if inbox_note is None:
                print("inbox:", flush=True)
                try:
                    cases += await bench_inbox(server.base, args.calls)
                except Exception as exc:
                    inbox_note = f"Inbox not measured: {exc}."
        finally:
            server.stop()
    return {
        "when": now_text(),
        "command": COMMAND
        + (f" --calls {args.calls}" if args.calls != 50 else "")
        + (f" --tickets {args.tickets}" if args.tickets != 10_000 else ""),
        "machine": machine_line(),
        "load_start": load_start,
        "load_end": load_average(),
        "calls": args.calls,
        "database": database,
        "cases": cases,
        "inbox_note": inbox_note,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="timed calls per case (default 50)")
    parser.add_argument("--tickets", type=int, default=10_000, help="tickets to load (10,000)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"web-{time.strftime('%Y%m%d-%H%M%S')}.json"
    results["results_file"] = name
    (RESULTS_DIR / name).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    body = render(results)
    print(body)
    if not args.no_readme:
        update_readme_section(README_TITLE, body)
    slow = [c["case"] for c in results["cases"] if c.get("target") and c["p95"] >= TARGET_MS]
    if slow:
        print(f"over the {TARGET_MS:.0f} ms target: {slow}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.chdir(PROJECT_ROOT)
    sys.exit(main())
