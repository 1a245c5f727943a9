"""The review inbox paging through 100,000 logged resident messages.

    .venv/bin/python benchmarks/review_benchmark.py                  # 100,000 messages
    .venv/bin/python benchmarks/review_benchmark.py --messages 20000 --calls 10 --no-readme

Target (issue 6; measured here, not asserted in tests): the inbox pages through
100,000 logged messages with each page in under 500 ms.

How: a fresh SQLite ticket database (migrated, demo directory) and a SQLite
conversation log with `--messages` resident messages (user events, each followed
by an action event) written in one bulk insert the way Rasa's SQL tracker store
lays them out (benchmarks/review_data.py: NLU examples with residents' variations,
so many near-duplicates; parse_data with an intent ranking, a quarter of them
under the fallback threshold); ~5% of the category messages got a ticket, 10% of
those moved to another grid and 10% given another category by a worker.

1. ingest: bot.review.ingest.ingest copies the log into review_messages (timed);
   then 2,000 groups are decided, so that "reviewed" and "all" have content;
2. query: bot.review.inbox.load_inbox in this process (a fresh connection per
   call, like the web app's), per case;
3. page: the real web app (`python -m bot web`, its own process on 127.0.0.1,
   background copy off) and an admin logged in through /login: GET /admin/review
   per case, 2 warm-up calls then `--calls` timed calls (wall time until the whole
   page is read: before answering, each page also checks the log for new
   messages, as it always does), plus the server's own CPU time per call.

Figures go to benchmarks/README.md ("Review inbox") and benchmarks/results/review-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench_common import (
    RESULTS_DIR,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    percentile,
    update_readme_section,
)
from review_data import add_tickets, build_log
from sqlalchemy import func, select

from bot.conversation_log import ConversationLog
from bot.review.inbox import PAGE_SIZE, InboxQuery, decide, load_inbox
from bot.review.ingest import ingest
from bot.routing.directory import apply_directory, load_directory_file
from bot.settings import PROJECT_ROOT, get_settings
from bot.store.db import make_engine, session_scope
from bot.store.migrate import upgrade_to_head
from bot.store.models import ReviewMessage

COMMAND = ".venv/bin/python benchmarks/review_benchmark.py"
README_TITLE = "Review inbox"
TARGET_MS = 500.0
DEMO_FILE = PROJECT_ROOT / "data" / "grids" / "jinan-demo.yml"
DECIDED_GROUPS = 2000


def cases(last_page: int, today: str, week_ago: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("first page (lowest confidence)", {}),
        ("page 50", {"page": "50"}),
        (f"last page ({last_page})", {"page": str(last_page)}),
        ("sort: smallest margin", {"sort": "margin"}),
        ("sort: smallest margin, page 50", {"sort": "margin", "page": "50"}),
        ("sort: newest", {"sort": "newest"}),
        ("sort: largest groups", {"sort": "count"}),
        ("filter: intent report_noise", {"intent": "report_noise"}),
        ("filter: confidence 40–60%", {"min": "40", "max": "60"}),
        ("filter: last 7 days", {"from": week_ago, "to": today}),
        ("filter: grid HPXC-01", {"grid": "HPXC-01"}),
        ("filter: ticket changed by a worker", {"changed": "1"}),
        ("filter: fallback only, margin sort", {"fallback": "1", "sort": "margin"}),
        ("filter: text contains 暖气", {"q": "暖气"}),
        ("status: all (reviewed and not)", {"status": "all"}),
        ("status: reviewed", {"status": "reviewed"}),
    ]


# -- data -------------------------------------------------------------------------------


def prepare(workdir: Path, messages: int) -> dict[str, Any]:
    url = f"sqlite:///{workdir / 'neighbourhood.db'}"
    engine = make_engine(url)
    try:
        upgrade_to_head(engine)
        with session_scope(engine) as session:
            apply_directory(session, load_directory_file(DEMO_FILE))
        print(f"writing {messages:,} messages to the log ...", flush=True)
        logged, insert_seconds = build_log(workdir / "conversations.db", messages)
        tickets = add_tickets(engine, logged)
        print(f"  {tickets}", flush=True)
        log = ConversationLog(f"sqlite:///{workdir / 'conversations.db'}")
        assert log.engine() is not None
        print("ingesting ...", flush=True)
        started = time.perf_counter()
        cpu = time.process_time()
        result = ingest(engine, log)
        ingest_seconds = time.perf_counter() - started
        ingest_cpu = time.process_time() - cpu
        # a caught-up ingest: what every page pays before it renders
        idle = []
        for _ in range(20):
            started = time.perf_counter()
            ingest(engine, log)
            idle.append((time.perf_counter() - started) * 1000)
        log.dispose()
        with session_scope(engine) as session:
            hashes = list(
                session.execute(
                    select(ReviewMessage.norm_hash)
                    .group_by(ReviewMessage.norm_hash)
                    .order_by(func.min(ReviewMessage.id))
                    .limit(DECIDED_GROUPS)
                ).scalars()
            )
            groups = covered = 0
            for start in range(0, len(hashes), 500):  # decide() takes 500 groups at a time
                done = decide(session, hashes[start : start + 500], "confirm", "benchmark")
                groups, covered = groups + done.groups, covered + done.messages
        with session_scope(engine, readonly=True) as session:
            first = load_inbox(session, InboxQuery())
    finally:
        engine.dispose()
    size = (workdir / "neighbourhood.db").stat().st_size
    return {
        "url": url,
        "messages": messages,
        "log_insert_seconds": insert_seconds,
        "tickets": tickets,
        "ingest": {
            "seconds": ingest_seconds,
            "cpu_seconds": ingest_cpu,
            "added": result.added,
            "linked": result.linked,
            "updated": result.updated,
            "batches": result.batches,
            "idle_ms_p50": percentile(idle, 50),
            "idle_ms_p95": percentile(idle, 95),
        },
        "decided": {"groups": groups, "messages": covered},
        "open_groups": first.groups_total,
        "open_messages": first.messages_total,
        "last_page": first.pages,
        "db_bytes": size,
    }


# -- in process ---------------------------------------------------------------------------


def time_queries(url: str, plan: list[tuple[str, dict[str, str]]], runs: int) -> list[dict]:
    engine = make_engine(url)
    tz = get_settings().timezone
    out = []
    try:
        for name, params in plan:
            query = InboxQuery.from_params(params)
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                with session_scope(engine, readonly=True) as session:
                    page = load_inbox(session, query, tz)
                times.append((time.perf_counter() - started) * 1000)
            out.append(
                {
                    "case": name,
                    "p50": percentile(times, 50),
                    "p95": percentile(times, 95),
                    "groups": page.groups_total,
                    "messages": page.messages_total,
                    "rows": len(page.rows),
                }
            )
            print(f"  query {name}: p50 {out[-1]['p50']:.0f} ms", flush=True)
    finally:
        engine.dispose()
    return out


# -- over HTTP ------------------------------------------------------------------------------


async def time_pages(
    base: str, plan: list[tuple[str, dict[str, str]]], calls: int, admin_password: str
) -> list[dict]:
    from web_benchmark import getter, logged_in_client, time_calls

    client = await logged_in_client(base, "admin", admin_password)
    out = []
    try:
        for name, params in plan:
            measured = await time_calls(getter(client, base + "/admin/review", params), calls, 2)
            body = measured.pop("body").decode("utf-8", "replace")
            rows = len(re.findall(r'<li class="group', body))
            out.append({"case": name, "rows": rows, **measured})
            print(
                f"  page {name}: p50 {measured['p50']:.0f} ms, p95 {measured['p95']:.0f} ms",
                flush=True,
            )
    finally:
        await client.close()
    return out


async def run_pages(workdir: Path, url: str, plan: list, calls: int) -> list[dict]:
    import web_benchmark
    from web_benchmark import ADMIN_PASSWORD, WebServer

    os.environ["REVIEW_INGEST_INTERVAL_SECONDS"] = "0"  # the benchmark's copy is done
    server = WebServer(workdir, url)
    try:
        await server.wait_ready()
        web_benchmark.SERVER_PID = server.process.pid
        return await time_pages(server.base, plan, calls, ADMIN_PASSWORD)
    finally:
        server.stop()


# -- report ---------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    data = results["data"]
    ing = data["ingest"]
    queries = {q["case"]: q for q in results["queries"]}
    pages = results["pages"]
    rows = [
        [
            p["case"],
            p["rows"],
            f"{queries[p['case']]['groups']:,} / {queries[p['case']]['messages']:,}",
            f"{queries[p['case']]['p50']:.0f}",
            f"{p['p50']:.0f}",
            f"{p['p95']:.0f}",
            f"{p['max']:.0f}",
            f"{p['server_cpu_ms']:.0f}" if p.get("server_cpu_ms") is not None else "—",
            "**yes**" if p["p95"] < TARGET_MS else "**no**",
        ]
        for p in pages
    ]
    table = markdown_table(
        [
            "case",
            "groups shown",
            "groups / messages matching",
            "query p50 (ms)",
            "page p50 (ms)",
            "page p95 (ms)",
            "page max (ms)",
            "server CPU per page (ms)",
            f"p95 < {TARGET_MS:.0f} ms",
        ],
        rows,
    )
    worst = max(pages, key=lambda p: p["p95"])
    met = all(p["p95"] < TARGET_MS for p in pages)
    verdict = (
        f"Target (each page < {TARGET_MS:.0f} ms with {data['messages']:,} logged messages): "
        + ("**met**" if met else "**not met**")
        + f" at p95 for every case; slowest `{worst['case']}` p95 {worst['p95']:.0f} ms "
        f"(server CPU {worst['server_cpu_ms']:.0f} ms per page)."
    )
    tickets = data["tickets"]
    lines = [
        f"Latest run: {results['when']}, `{results['command']}`.",
        f"Machine: {results['machine']}.",
        f"Load average (1/5/15 min) at start: {results['load_start']}; at the end: "
        f"{results['load_end']} (other work shared the cores: treat wall times as upper "
        "bounds; server CPU per page is what a page costs).",
        "",
        f"Data: a SQLite conversation log with {data['messages']:,} resident messages (and "
        f"as many action events) bulk-inserted in {data['log_insert_seconds']:.1f} s "
        "(`benchmarks/review_data.py`: NLU examples with residents' greetings, addresses, "
        "punctuation and emoji; an intent ranking per message, those under 0.4 as "
        f"nlu_fallback); {tickets['tickets']:,} tickets for ~5% of the category messages, "
        f"{tickets['transferred']} transferred and {tickets['recategorised']} recategorised "
        "by a worker. Ticket database: demo directory, SQLite, "
        f"{data['db_bytes'] / 2**20:.0f} MiB after the ingest.",
        "",
        f"Ingest (`bot.review.ingest.ingest`, everything at once, in this process): "
        f"{ing['added']:,} messages in {ing['seconds']:.1f} s ({ing['cpu_seconds']:.1f} s "
        f"CPU; {ing['added'] / max(ing['seconds'], 1e-9):,.0f} messages/s, "
        f"{ing['batches']} batches of 1,000), {ing['linked']:,} linked to their tickets, "
        f"{ing['updated']} updated from workers' changes. A caught-up ingest (what every "
        f"page runs first): p50 {ing['idle_ms_p50']:.1f} ms, p95 {ing['idle_ms_p95']:.1f} ms. "
        f"Then {data['decided']['groups']:,} groups ({data['decided']['messages']:,} "
        f"messages) were confirmed; the inbox held {data['open_groups']:,} groups of "
        f"{data['open_messages']:,} unreviewed messages, {data['last_page']:,} pages of "
        f"{PAGE_SIZE}.",
        "",
        verdict,
        "",
        table,
        "",
        "- query: `load_inbox` in this process, a new SQLite connection per call (as the "
        "web app's engine does); page: `GET /admin/review` from the running web app as the "
        f"admin, 2 warm-up calls then {results['calls']} timed calls per case, one at a time.",
        "- The unfiltered inbox (every sort, any page) reads `review_groups`: per "
        "near-duplicate group the figures of its unreviewed messages (count, lowest "
        "confidence, smallest margin, newest, suggestion), kept in step by the ingest, "
        "the ticket links, decisions and undo in their own transactions, with one index "
        "per sort order, so a page is an index walk with LIMIT/OFFSET. Filtered views and "
        "the reviewed/all views aggregate the matching messages per group in one "
        "statement (window functions give the totals) that reads only "
        "`ix_review_messages_inbox`, an index holding every column the inbox filters, "
        "groups and sorts by except the text; the text filter reads the rows. Four small "
        "batched queries then fetch the page's messages, tickets, workers' changes and grids.",
        "- Earlier designs, same data and machine: aggregating every message for each "
        "unfiltered page (no `review_groups`) cost 170–260 ms of server CPU per page and "
        "missed the target at p95 on the first, 50th and last page (592, 535, 747 ms) "
        "while other jobs loaded the machine; without the covering index the aggregate "
        "statement alone took ~0.9 s (rows read through the index one by one).",
    ]
    lines += ["", f"Raw figures: `benchmarks/results/{results['results_file']}` (not committed)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="logged messages")
    parser.add_argument("--calls", type=int, default=20, help="timed page calls per case")
    parser.add_argument("--runs", type=int, default=10, help="in-process query runs per case")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the README")
    args = parser.parse_args(argv)
    load_start = load_average()
    tz = ZoneInfo(get_settings().timezone)
    today = datetime.now(tz).date()
    with tempfile.TemporaryDirectory(prefix="review-bench-") as tmp:
        workdir = Path(tmp)
        data = prepare(workdir, args.messages)
        plan = cases(data["last_page"], today.isoformat(), (today - timedelta(days=7)).isoformat())
        print("in process:", flush=True)
        queries = time_queries(data["url"], plan, args.runs)
        print("over HTTP:", flush=True)
        pages = asyncio.run(run_pages(workdir, data["url"], plan, args.calls))
    results = {
        "when": now_text(),
        "command": COMMAND
        + (f" --messages {args.messages}" if args.messages != 100_000 else "")
        + (f" --calls {args.calls}" if args.calls != 20 else ""),
        "machine": machine_line(),
        "load_start": load_start,
        "load_end": load_average(),
        "calls": args.calls,
        "data": data,
        "queries": queries,
        "pages": pages,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = f"review-{time.strftime('%Y%m%d-%H%M%S')}.json"
    results["results_file"] = name
    (RESULTS_DIR / name).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
    body = render(results)
    print(body)
    if not args.no_readme:
        update_readme_section(README_TITLE, body)
    slow = [p["case"] for p in pages if p["p95"] >= TARGET_MS]
    if slow:
        print(f"over {TARGET_MS:.0f} ms at p95: {', '.join(slow)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
