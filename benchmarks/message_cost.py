"""What a message costs with the assistant's tracker store, against the floor.

    .venv/bin/python benchmarks/message_cost.py                  # 400 messages per store
    .venv/bin/python benchmarks/message_cost.py --messages 100   # quick
    .venv/bin/python benchmarks/message_cost.py --stores floor,default

The floor is Rasa with the same model and an in-memory tracker store: nothing is
stored, nothing can be reviewed. Every other configuration keeps the conversation
log. All the Rasa servers (one per configuration, `python -m bot.rasa_server run`,
same model, same credentials, in-memory lock store unless said) run at once on free
ports with one shared action server; one client sends one message at a time
(closed loop), to each server in turn (the order rotates every round), so every
configuration sees the same moments of a machine shared with other people's jobs.

Two workloads, one after the other: chit-chat (greeting, thanks, "are you a bot",
goodbye, out of scope: NLU, policies and the tracker, no custom action) and report
flows (the conversations of benchmarks/webhook_load.py: report form, address,
confirmation, tickets; several custom actions a turn). Senders are warmed up (their
session started) before measuring.

Per configuration and workload: wall time per message (mean, p50, p99) and the
closed-loop throughput (1000 / mean), its ratio to the floor's, and the CPU time per
message of the Rasa server (and of a log writer process, where there is one) from
/proc/<pid>/stat, which depends much less on the other jobs than wall time does.
Figures go to benchmarks/README.md ("Per-message cost against the floor") and
benchmarks/results/message-cost-*.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
    percentile,
    update_readme_section,
)
from webhook_load import CONVERSATIONS

from bot import launcher
from bot.settings import load_settings

SECTION = "Per-message cost against the floor"
COMMAND = ".venv/bin/python benchmarks/message_cost.py"
CHIT_CHAT = ("你好", "谢谢", "你是机器人吗", "再见", "今天股票涨了没")
LOG_WRITER_NAME = "log writer"


@dataclass(frozen=True)
class Store:
    """One configuration: its endpoints' tracker_store (None: in memory) and more."""

    name: str
    description: str
    tracker_store: dict[str, Any] | None
    needs: tuple[str, ...] = ()  # "postgres", "redis"
    lock_store: dict[str, Any] | None = None
    event_broker: dict[str, Any] | None = None
    log_writer: bool = False  # a `python -m bot conversation-log` process


def project_tracker_store() -> dict[str, Any]:
    endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text("utf-8"))
    return endpoints["tracker_store"]


STORES: dict[str, Callable[[], Store]] = {
    "floor": lambda: Store(
        "floor", "Rasa's in-memory tracker store (nothing kept): the floor", None
    ),
    "default": lambda: Store(
        "default",
        "endpoints.yml as it is (`make run`): BoundedSQLTrackerStore on SQLite",
        project_tracker_store(),
    ),
    "rasa-sql": lambda: Store(
        "rasa-sql",
        "Rasa's own SQLTrackerStore (`type: SQL`) on SQLite",
        {"type": "SQL", "url": "${TRACKER_DATABASE_URL}"},
    ),
    "postgres": lambda: Store(
        "postgres",
        "BoundedSQLTrackerStore on PostgreSQL (endpoints.scale.yml's store before the"
        " Redis one), Redis lock store",
        project_tracker_store() | {"url": "${BENCH_POSTGRES_URL}"},
        needs=("postgres", "redis"),
        lock_store={
            "type": "redis",
            "url": "${REDIS_HOST}",
            "port": "${REDIS_PORT}",
            "db": "${REDIS_DB}",
        },
    ),
    "redis": lambda: redis_store("redis", in_memory_locks=True),
    "redis-scale": lambda: redis_store("redis-scale", in_memory_locks=False),
}


def redis_store(name: str, in_memory_locks: bool) -> Store:
    redis_at = {"url": "${REDIS_HOST}", "port": "${REDIS_PORT}", "db": "${REDIS_DB}"}
    tag = f"bench{os.getpid()}{name.replace('-', '')}"
    return Store(
        name,
        "BoundedRedisTrackerStore (current session in Redis) + RedisStreamEventBroker, the"
        " log written to PostgreSQL by `python -m bot conversation-log`, "
        + ("in-memory lock store" if in_memory_locks else "Redis lock store (endpoints.scale.yml)"),
        {
            "type": "bot.rasa_tracker_store.BoundedRedisTrackerStore",
            **redis_at,
            "key_prefix": tag,
            "max_session_events": 200,
        },
        needs=("postgres", "redis"),
        lock_store=None if in_memory_locks else {"type": "redis", **redis_at},
        event_broker={
            "type": "bot.conversation_stream.RedisStreamEventBroker",
            **redis_at,
            "stream": f"{tag}:log",
        },
        log_writer=True,
    )


# -- processes ------------------------------------------------------------------------


@dataclass
class Server:
    store: Store
    url: str
    process: subprocess.Popen
    helpers: dict[str, subprocess.Popen] = field(default_factory=dict)
    connection: http.client.HTTPConnection | None = None

    def cpu(self) -> dict[str, float]:
        out = {"rasa": cpu_seconds(self.process.pid)}
        for name, process in self.helpers.items():
            out[name] = cpu_seconds(process.pid)
        return out

    def send(self, sender: str, text: str) -> tuple[float, int]:
        """POST one message to the REST channel; (milliseconds, number of answers)."""
        body = json.dumps({"sender": sender, "message": text}).encode()
        started = time.perf_counter()
        for attempt in (1, 2):
            if self.connection is None:
                host, port = self.url.removeprefix("http://").split(":")
                self.connection = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                self.connection.request(
                    "POST",
                    "/webhooks/rest/webhook",
                    body,
                    {"Content-Type": "application/json"},
                )
                response = self.connection.getresponse()
                answers = json.loads(response.read() or b"[]")
                break
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None  # the server closed the kept-alive connection
                if attempt == 2:
                    raise
                started = time.perf_counter()
        return (time.perf_counter() - started) * 1000, len(answers)


def endpoints_file(store: Store, workdir: Path) -> Path:
    endpoints: dict[str, Any] = {"action_endpoint": {"url": "${ACTION_ENDPOINT_URL}"}}
    if store.tracker_store is not None:
        endpoints["tracker_store"] = store.tracker_store
    endpoints["lock_store"] = store.lock_store or {"type": "in_memory"}
    if store.event_broker is not None:
        endpoints["event_broker"] = store.event_broker
    path = workdir / f"endpoints-{store.name}.yml"
    path.write_text(yaml.safe_dump(endpoints, allow_unicode=True), "utf-8")
    return path


@contextmanager
def running_servers(
    stores: list[Store], model: Path, workdir: Path, args: argparse.Namespace
) -> Iterator[list[Server]]:
    settings = replace(
        load_settings(),
        actions_port=free_port(),
        database_url=f"sqlite:///{workdir / 'neighbourhood.db'}",
        tracker_database_url=f"sqlite:///{workdir / 'conversations.db'}",
    )
    env = launcher.rasa_environment(settings)
    env.update({**OFFLINE_ENV, "DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"})
    env.pop("RASA_AUTH_TOKEN", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        env.update(redis_parts(args.redis_url))
    launcher.prepare_database(env)
    actions = launcher.services(settings, model)[0]
    log = (workdir / "servers.log").open("wb")
    processes: list[subprocess.Popen] = []

    def popen(command: list[str], extra: dict[str, str]) -> subprocess.Popen:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
        )
        processes.append(process)
        return process

    try:
        actions_process = popen(actions.command, {})
        servers = []
        for store in stores:
            port = free_port()
            extra = {
                "TRACKER_DATABASE_URL": f"sqlite:///{workdir / f'conversations-{store.name}.db'}",
                "RASA_PORT": str(port),
            }
            if "postgres" in store.needs:  # a database of its own
                extra["BENCH_POSTGRES_URL"] = args.databases[store.name]
                extra["TRACKER_DATABASE_URL"] = args.databases[store.name]
            command = launcher.rasa_command(
                "run",
                "--model",
                str(model),
                "--endpoints",
                str(endpoints_file(store, workdir)),
                "--credentials",
                "credentials.yml",
                "--port",
                str(port),
            )
            server = Server(store, f"http://127.0.0.1:{port}", popen(command, extra))
            if store.log_writer and store.event_broker:
                server.helpers[LOG_WRITER_NAME] = popen(
                    [
                        sys.executable,
                        *("-m", "bot", "conversation-log"),
                        *("--stream", store.event_broker["stream"]),
                    ],
                    extra,
                )
            servers.append(server)
        launcher.wait_healthy(actions.health_url, 600, actions_process)
        for server in servers:
            launcher.wait_healthy(server.url + "/", 900, server.process)
        yield servers
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


@contextmanager
def fresh_database(base_url: str, suffix: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of `base_url`, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"message_cost_{os.getpid()}_{suffix}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_parts(url: str) -> dict[str, str]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return {
        "REDIS_HOST": parsed.hostname or "127.0.0.1",
        "REDIS_PORT": str(parsed.port or 6379),
        "REDIS_DB": (parsed.path or "/0").lstrip("/") or "0",
    }


# -- load -----------------------------------------------------------------------------------


Script = list[tuple[int, str]]  # (resident, text) in sending order


def chit_chat_script(residents: int, messages: int) -> Script:
    return [
        (k % residents, CHIT_CHAT[(k // residents + k) % len(CHIT_CHAT)]) for k in range(messages)
    ]


def report_script(residents: int, messages: int) -> Script:
    out = []
    for k in range(messages):
        resident, turn = k % residents, k // residents
        conversation = CONVERSATIONS[resident % len(CONVERSATIONS)]
        out.append((resident, conversation[turn % len(conversation)]))
    return out


WORKLOADS: dict[str, Callable[[int, int], Script]] = {
    "chit-chat": chit_chat_script,
    "reports": report_script,
}


@dataclass
class Result:
    store: str
    workload: str
    latencies: list[float]
    cpu: dict[str, float]  # seconds over the measured messages
    empty_answers: int
    load_before: str
    load_after: str

    @property
    def mean(self) -> float:
        return sum(self.latencies) / max(len(self.latencies), 1)

    def cpu_ms(self, name: str) -> float:
        return self.cpu.get(name, float("nan")) * 1000 / max(len(self.latencies), 1)

    def summary(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "workload": self.workload,
            "messages": len(self.latencies),
            "mean_ms": self.mean,
            "p50_ms": percentile(self.latencies, 50),
            "p99_ms": percentile(self.latencies, 99),
            "throughput": 1000 / self.mean if self.mean else float("nan"),
            "cpu_ms_per_message": {k: self.cpu_ms(k) for k in self.cpu},
            "empty_answers": self.empty_answers,
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


def run_workload(servers: list[Server], workload: str, args: argparse.Namespace) -> list[Result]:
    script = WORKLOADS[workload](args.residents, args.messages)
    tag = f"{workload[0]}{int(time.time()) % 100000}"
    # warm-up: every sender's session starts (action_session_start), caches fill
    for resident in range(args.residents):
        for server in servers:
            server.send(f"{tag}-{server.store.name}-{resident}", "你好")
    load_before = load_average()
    cpu_before = [server.cpu() for server in servers]
    latencies: list[list[float]] = [[] for _ in servers]
    empty = [0] * len(servers)
    for number, (resident, text) in enumerate(script):
        order = list(range(len(servers)))
        shift = number % len(servers)
        for index in order[shift:] + order[:shift]:
            server = servers[index]
            ms, answers = server.send(f"{tag}-{server.store.name}-{resident}", text)
            latencies[index].append(ms)
            empty[index] += answers == 0
    load_after = load_average()
    results = []
    for index, server in enumerate(servers):
        after = server.cpu()
        cpu = {k: after[k] - cpu_before[index].get(k, 0.0) for k in after}
        results.append(
            Result(
                server.store.name,
                workload,
                latencies[index],
                cpu,
                empty[index],
                load_before,
                load_after,
            )
        )
    return results


# -- report ---------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def report(
    args: argparse.Namespace, started: str, load: str, model: Path, stores: list[Store],
    results: list[Result],
) -> str:  # fmt: skip
    tables = []
    for workload in args.workloads:
        rows = []
        by_store = {r.store: r for r in results if r.workload == workload}
        floor = by_store.get("floor")
        for store in stores:
            result = by_store.get(store.name)
            if result is None:
                continue
            s = result.summary()
            ratio = floor.mean / result.mean if floor and result.mean else float("nan")
            cpu_ratio = floor.cpu_ms("rasa") / result.cpu_ms("rasa") if floor else float("nan")
            writer = result.cpu_ms(LOG_WRITER_NAME)
            rows.append(
                [
                    f"**{store.name}**" if store.name == "floor" else store.name,
                    s["messages"],
                    fmt(s["mean_ms"]),
                    fmt(s["p50_ms"]),
                    fmt(s["p99_ms"]),
                    fmt(s["throughput"]),
                    fmt(ratio, 2),
                    fmt(result.cpu_ms("rasa")),
                    "—" if writer != writer else fmt(writer, 2),
                    fmt(cpu_ratio, 2),
                    s["empty_answers"],
                    f"{result.load_before} → {result.load_after}",
                ]
            )
        tables.append(
            f"**{workload}** ({len(rows)} servers, {args.messages} messages each, "
            f"{args.residents} residents)\n\n"
            + markdown_table(
                [
                    "store",
                    "messages",
                    "wall ms/msg (mean)",
                    "p50 (ms)",
                    "p99 (ms)",
                    "msg/s (closed loop)",
                    "× floor's throughput",
                    "Rasa CPU ms/msg",
                    "log writer CPU ms/msg",
                    "× floor's CPU (floor / this)",
                    "no answer",
                    "load avg before → after",
                ],
                rows,
            )
        )
    described = "\n".join(f"- `{s.name}`: {s.description}" for s in stores)
    return f"""
Latest run: {started}, `{command_line(args)}`, model `{model.name}`.
Machine: {machine_line()}.
Load average (1/5/15 min) at start: {load}. The 2 cores are shared with other
people's training runs and tests: wall times are upper bounds; the CPU columns
(user + system time of the process, /proc/<pid>/stat) move much less with the load.

Setup: one Rasa server per configuration, all running at once, same model, REST
channel, one shared action server; one client sends one message at a time to each
server in turn (closed loop; the order rotates every round), so all configurations
share the same moments of the machine. Every sender's session is started before
measuring. "× floor's throughput" = floor's wall time per message / this one's
(closed-loop throughput ratio); "× floor's CPU" the same with the Rasa server's CPU
time per message (the log writer's is separate).

{described}

{(chr(10) * 2).join(tables)}
"""


def command_line(args: argparse.Namespace) -> str:
    parts = [COMMAND, f"--messages {args.messages}", f"--stores {','.join(args.stores)}"]
    if args.workloads != list(WORKLOADS):
        parts.append(f"--workloads {','.join(args.workloads)}")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=400, help="per store and workload")
    parser.add_argument("--residents", type=int, default=20)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--model", type=Path)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="PostgreSQL for the `postgres` store (default: TEST_DATABASE_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL"),
        help="Redis for the stores that need it (default: TEST_REDIS_URL, REDIS_URL)",
    )
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    args.stores = [s for s in args.stores.split(",") if s]
    args.workloads = [w for w in args.workloads.split(",") if w]
    unknown = [s for s in args.stores if s not in STORES] + [
        w for w in args.workloads if w not in WORKLOADS
    ]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    if not 10 <= args.messages <= 5000 or not 1 <= args.residents <= 500:
        parser.error("--messages 10..5000, --residents 1..500")
    stores = [STORES[name]() for name in args.stores]
    skipped = []
    for store in list(stores):
        missing = [
            need
            for need in store.needs
            if (need == "postgres" and not (args.postgres_url or "").startswith("postgresql"))
            or (need == "redis" and not args.redis_url)
        ]
        if missing:
            skipped.append(f"{store.name} (needs {', '.join(missing)})")
            stores.remove(store)
    if skipped:
        print("Skipped: " + "; ".join(skipped), flush=True)
    args.stores = [s.name for s in stores]

    os.chdir(PROJECT_ROOT)
    os.environ.update(OFFLINE_ENV)
    model = (args.model or launcher.ensure_model()).resolve()
    started, load = now_text(), load_average()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="message-cost-") as tmp, ExitStack() as stack:
        args.databases = {
            s.name: stack.enter_context(fresh_database(args.postgres_url, s.name.replace("-", "_")))
            for s in stores
            if "postgres" in s.needs
        }
        with running_servers(stores, model, Path(tmp), args) as servers:
            print(f"{len(servers)} Rasa servers up; load {load_average()}", flush=True)
            for workload in args.workloads:
                done = run_workload(servers, workload, args)
                for result in done:
                    s = result.summary()
                    print(
                        f"  {workload:9s} {result.store:10s} {s['mean_ms']:7.1f} ms/msg "
                        f"p99 {s['p99_ms']:7.1f}  CPU "
                        + ", ".join(f"{k} {v:.2f}" for k, v in s["cpu_ms_per_message"].items())
                        + f" ms/msg; load {result.load_after}",
                        flush=True,
                    )
                results.extend(done)
    body = report(args, started, load, model, stores, results)
    print(body)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"message-cost-{run_id}.json"
    raw.write_text(
        json.dumps(
            {
                "started": started,
                "load_at_start": load,
                "machine": machine_line(),
                "model": str(model),
                "args": {
                    k: (str(v) if isinstance(v, Path) else v)
                    for k, v in vars(args).items()
                    if k != "databases"
                },
                "results": [r.summary() | {"latencies_ms": r.latencies} for r in results],
            },
            ensure_ascii=False,
            indent=1,
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
