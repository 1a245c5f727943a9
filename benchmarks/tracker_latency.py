"""A resident's 1,000th message must be answered as fast as their first.

    .venv/bin/python benchmarks/tracker_latency.py             # measure
    .venv/bin/python benchmarks/tracker_latency.py --profile   # + where the time goes

For each tracker store configuration (`--stores`, default both):
- `rasa-sql`: Rasa's own SQLTrackerStore (`type: SQL`), i.e. endpoints.yml with
  its tracker_store replaced by that; the reference, unbounded sessions;
- `project`: endpoints.yml as it is in the working tree,
starts the action server and the Rasa server (bot.launcher, as tests/conftest.py
does) on free ports of 127.0.0.1 with fresh SQLite databases, sends 1,000
messages from one sender through the REST channel, one at a time, and records
each answer's latency; then 10 messages from a fresh sender. The messages cycle
through ten realistic ones, so every aligned window of ten (1-10, 491-500,
991-1000) holds the same ten; the script checks that they got the same answers.

`--profile` then stops the Rasa server and replays messages in this process
(`Agent.handle_message`, same model, same tracker store and file, a running
action server) for the long conversation and for a fresh one, timing each stage
of a turn (tracker load, NLU, policies, action server call, tracker save) and
writing a cProfile of each to benchmarks/results/.

Figures go to benchmarks/README.md ("Latency against conversation length") and
benchmarks/results/tracker-latency-*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import inspect
import io
import json
import logging
import os
import pstats
import sqlite3
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from bench_common import (
    OFFLINE_ENV,
    PROJECT_ROOT,
    RESULTS_DIR,
    free_port,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    percentile,
    update_readme_section,
)

from bot import launcher
from bot.settings import Settings, load_settings

COMMAND = ".venv/bin/python benchmarks/tracker_latency.py"

# Ten messages, so that every window of ten aligned on a multiple of ten holds
# the same mix. Two category reports open the report form (custom actions on
# the action server); the resident then gives no usable address and drops the
# report, and says goodbye, so each cycle ends where it started (the script
# checks that every window gets the same answers as messages 1-10).
MESSAGES = (
    "你好",
    "暖氣不熱 屋里才十四度",
    "算了 不用了",
    "谢谢",
    "明天天气怎么样",
    "楼下的狗天天半夜叫",
    "不用了",
    "辛苦了",
    "今天股票涨了没",
    "再见",
)
WINDOWS = ((1, 10), (11, 20), (91, 100), (491, 500), (991, 1000))
REQUEST_TIMEOUT = 60.0


@dataclass
class Turn:
    index: int  # 1-based position in the sender's conversation
    text: str
    ms: float
    replies: int
    ok: bool
    reply: str = ""  # start of the first answer, to check what the conversation did


@dataclass
class Conversation:
    sender: str
    turns: list[Turn] = field(default_factory=list)

    def window(self, first: int, last: int) -> list[float]:
        return [t.ms for t in self.turns if first <= t.index <= last]

    def last_window(self) -> tuple[int, int]:
        """The last complete window of ten, aligned like the cycle (e.g. 991-1000)."""
        end = len(self.turns) // 10 * 10
        return end - 9, end

    def same_answers(self, first: int, reference: int = 1) -> bool:
        """Whether messages first.. first+9 got the answers messages reference.. did."""
        answers = {t.index: t.reply for t in self.turns}
        return all(answers.get(first + k) == answers.get(reference + k) for k in range(10))


# --- the stack and the REST channel ---------------------------------------------------


# name -> (description, tracker_store section of the endpoints file; None: as in endpoints.yml)
STORES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "rasa-sql": (
        "Rasa's SQLTrackerStore (`type: SQL`), unbounded sessions",
        {"type": "SQL", "url": "${TRACKER_DATABASE_URL}"},
    ),
    "project": ("endpoints.yml as in the working tree", None),
}


def endpoints_file(store: str, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """endpoints.yml, with the tracker store of `store`; (path, tracker_store section)."""
    project = PROJECT_ROOT / "endpoints.yml"
    endpoints = yaml.safe_load(project.read_text(encoding="utf-8"))
    section = STORES[store][1]
    if section is None:
        return project, endpoints.get("tracker_store") or {}
    endpoints["tracker_store"] = section
    path = workdir / f"endpoints-{store}.yml"
    path.write_text(yaml.safe_dump(endpoints), encoding="utf-8")
    return path, section


@dataclass
class Stack:
    settings: Settings
    services: list[launcher.Service]
    env: dict[str, str]

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.actions_port}"

    def pid(self, name: str) -> int:
        process = next(s.process for s in self.services if s.name == name)
        assert process is not None
        return process.pid


@contextmanager
def running_stack(
    model: Path, workdir: Path, services: str = "all", endpoints: Path | None = None
) -> Iterator[Stack]:
    """Action server (and Rasa server) on free ports with SQLite files in `workdir`."""
    settings = replace(
        load_settings(),
        rasa_port=free_port(),
        actions_port=free_port(),
        database_url=f"sqlite:///{workdir / 'neighbourhood.db'}",
        tracker_database_url=f"sqlite:///{workdir / 'conversations.db'}",
    )
    env = launcher.rasa_environment(settings)
    env.update(
        {
            **OFFLINE_ENV,
            "DATABASE_URL": settings.database_url,
            "RASA_PORT": str(settings.rasa_port),
            "ACTIONS_PORT": str(settings.actions_port),
        }
    )
    stack = launcher.services(settings, model, str(endpoints) if endpoints else None)
    if services == "actions":
        stack = stack[:1]
    try:
        launcher.start(stack, env, timeout=300)
        yield Stack(settings, stack, env)
    finally:
        launcher.stop(stack)


def send(rasa_url: str, sender: str, text: str) -> tuple[float, list[str]]:
    """POST one message to the REST channel; (milliseconds, texts of the answers)."""
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(
        f"{rasa_url}/webhooks/rest/webhook",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
        replies = json.loads(response.read() or b"[]")
    ms = (time.perf_counter() - started) * 1000
    return ms, [str(reply.get("text") or reply) for reply in replies]


def converse(rasa_url: str, sender: str, count: int, deadline: float) -> Conversation:
    conversation = Conversation(sender)
    for index in range(1, count + 1):
        if time.monotonic() > deadline:
            print(f"time limit reached after {index - 1} messages", flush=True)
            break
        text = MESSAGES[(index - 1) % len(MESSAGES)]
        ms, replies = send(rasa_url, sender, text)
        first = replies[0][:30] if replies else ""
        conversation.turns.append(Turn(index, text, ms, len(replies), bool(replies), first))
        if index % 100 == 0:
            recent = conversation.window(index - 9, index)
            print(
                f"{sender}: {index} messages, p50 of the last 10: {percentile(recent, 50):.0f} ms",
                flush=True,
            )
    return conversation


def stored_events(tracker_db: Path, sender: str) -> dict[str, int]:
    with sqlite3.connect(tracker_db) as db:
        total = db.execute("SELECT count(*) FROM events WHERE sender_id = ?", (sender,)).fetchone()
        sessions = db.execute(
            "SELECT count(*) FROM events WHERE sender_id = ? AND type_name = 'session_started'",
            (sender,),
        ).fetchone()
        latest = db.execute(
            "SELECT count(*) FROM events WHERE sender_id = ?1 AND id >= coalesce("
            " (SELECT max(id) FROM events WHERE sender_id = ?1 AND type_name = 'session_started'),"
            " 0)",
            (sender,),
        ).fetchone()
        by_type = db.execute(
            "SELECT type_name, count(*) FROM events WHERE sender_id = ? GROUP BY type_name",
            (sender,),
        ).fetchall()
    return {
        "events": total[0],
        "sessions": sessions[0],
        "latest_session_events": latest[0],
        **{f"type:{t}": n for t, n in by_type},
    }


# --- profiling in process -------------------------------------------------------------


class StageTimer:
    """Wraps methods of Rasa classes and adds up the wall time spent in each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth: dict[str, int] = defaultdict(int)
        self._originals: list[tuple[type, str, Any]] = []

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def _enter(self, label: str) -> bool:
        self._depth[label] += 1
        return self._depth[label] == 1  # re-entrant calls are counted once

    def _leave(self, label: str, outermost: bool, started: float) -> None:
        self._depth[label] -= 1
        if outermost:
            self.seconds[label] += time.perf_counter() - started
            self.calls[label] += 1

    def wrap(self, owner: type, attribute: str, label: str) -> None:
        raw = owner.__dict__[attribute]
        kind = type(raw) if isinstance(raw, (classmethod, staticmethod)) else None
        function = raw.__func__ if kind else raw
        timer = self

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                outermost, started = timer._enter(label), time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    timer._leave(label, outermost, started)

            wrapped: Callable[..., Any] = timed_async
        else:

            @functools.wraps(function)
            def timed(*args: Any, **kwargs: Any) -> Any:
                outermost, started = timer._enter(label), time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    timer._leave(label, outermost, started)

            wrapped = timed
        self._originals.append((owner, attribute, raw))
        setattr(owner, attribute, kind(wrapped) if kind else wrapped)

    def restore(self) -> None:
        for owner, attribute, raw in reversed(self._originals):
            setattr(owner, attribute, raw)
        self._originals.clear()


# (label, module, class, method). "total" is the whole turn; the indented
# labels are parts of the stage above them.
STAGES = (
    ("total: Agent.handle_message", "rasa.core.agent", "Agent", "handle_message"),
    ("tracker load: SQLTrackerStore.retrieve", "rasa.core.tracker_store", "SQLTrackerStore",
     "retrieve"),
    ("  of which replaying events: DialogueStateTracker.from_dict", "rasa.shared.core.trackers",
     "DialogueStateTracker", "from_dict"),
    ("NLU: MessageProcessor.parse_message", "rasa.core.processor", "MessageProcessor",
     "parse_message"),
    ("policies: MessageProcessor._predict_next_with_tracker", "rasa.core.processor",
     "MessageProcessor", "_predict_next_with_tracker"),
    ("  of which states of the whole history: Domain.states_for_tracker_history",
     "rasa.shared.core.domain", "Domain", "states_for_tracker_history"),
    ("action_extract_slots: MessageProcessor.run_action_extract_slots", "rasa.core.processor",
     "MessageProcessor", "run_action_extract_slots"),
    ("tracker copy per action: DialogueStateTracker.copy", "rasa.shared.core.trackers",
     "DialogueStateTracker", "copy"),
    ("custom action: RemoteAction.run (HTTP to the action server)", "rasa.core.actions.action",
     "RemoteAction", "run"),
    ("  of which serialising the tracker: DialogueStateTracker.current_state",
     "rasa.shared.core.trackers", "DialogueStateTracker", "current_state"),
    ("  of which checking the answer: RemoteAction._validate_action_result (jsonschema)",
     "rasa.core.actions.action", "RemoteAction", "_validate_action_result"),
    ("tracker save: SQLTrackerStore.save", "rasa.core.tracker_store", "SQLTrackerStore", "save"),
    ("  of which counting stored events: SQLTrackerStore._additional_events",
     "rasa.core.tracker_store", "SQLTrackerStore", "_additional_events"),
    ("(any) DialogueStateTracker.applied_events", "rasa.shared.core.trackers",
     "DialogueStateTracker", "applied_events"),
)  # fmt: skip


@dataclass
class StageProfile:
    sender: str
    history_events_before: int
    session_events_before: int
    messages: int
    ms_per_message: dict[str, float]
    calls_per_message: dict[str, float]
    cprofile_top: str


async def profile_sender(
    agent: Any, timer: StageTimer, sender: str, count: int, tracker_db: Path, label: str
) -> StageProfile:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    before = stored_events(tracker_db, sender)

    async def one(index: int) -> None:
        text = MESSAGES[index % len(MESSAGES)]
        await agent.handle_message(UserMessage(text, CollectingOutputChannel(), sender))

    # Stage timings, then the same number of messages under cProfile.
    timer.reset()
    for index in range(count):
        await one(index)
    ms = {k: v * 1000 / count for k, v in timer.seconds.items()}
    calls = {k: v / count for k, v in timer.calls.items()}

    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(count):
        await one(index)
    profiler.disable()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(RESULTS_DIR / f"tracker-profile-{label}.prof"))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(r"rasa|sqlalchemy|json", 30)
    return StageProfile(
        sender,
        before["events"],
        before["latest_session_events"],
        count,
        ms,
        calls,
        text.getvalue(),
    )


def run_profile(
    model: Path, stack: Stack, endpoints: Path, long_sender: str, count: int, label: str
) -> list[StageProfile]:
    import importlib

    from rasa.core.agent import Agent
    from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.endpoints import EndpointConfig, read_endpoint_config
    from rasa.utils.log_utils import configure_structlog

    # as in the server (INFO and up); debug logging would add its own cost
    configure_logging_and_warnings(logging.INFO)
    configure_structlog(logging.INFO)
    os.environ.update(stack.env)  # the endpoints file reads ${TRACKER_DATABASE_URL} ...
    store = TrackerStore.create(read_endpoint_config(str(endpoints), "tracker_store"))
    tracker_db = Path(stack.settings.tracker_database_url.removeprefix("sqlite:///"))
    timer = StageTimer()
    for name, module, cls, method in STAGES:
        timer.wrap(getattr(importlib.import_module(module), cls), method, name)
    # a subclass of SQLTrackerStore (endpoints.yml) may override save/retrieve
    if type(store) is not SQLTrackerStore and isinstance(store, SQLTrackerStore):
        for name, _module, cls, method in STAGES:
            if cls == "SQLTrackerStore" and method in type(store).__dict__:
                timer.wrap(type(store), method, name)
    try:
        agent = Agent.load(
            str(model),
            tracker_store=store,
            action_endpoint=EndpointConfig(url=f"{stack.actions_url}/webhook"),
        )

        async def both() -> list[StageProfile]:
            # warm-up on a throw-away sender: graph, TensorFlow, HTTP session
            await profile_sender(agent, timer, "profile-warm-up", 10, tracker_db, "warm-up")
            fresh = await profile_sender(
                agent, timer, "profile-fresh", count, tracker_db, f"{label}-fresh"
            )
            long = await profile_sender(
                agent, timer, long_sender, count, tracker_db, f"{label}-long"
            )
            return [fresh, long]

        return asyncio.run(both())
    finally:
        timer.restore()


# --- report ---------------------------------------------------------------------------


@dataclass
class StoreRun:
    store: str
    tracker_store: dict[str, Any]
    long: Conversation
    fresh: Conversation
    events: dict[str, int]
    minutes: float
    load: str
    profiles: list[StageProfile] | None = None

    @property
    def title(self) -> str:
        options = ", ".join(f"{k}: {v}" for k, v in self.tracker_store.items() if k != "url")
        return f"`{self.store}` ({options})"


def p50_p90(values: Sequence[float], note: str = "") -> list[str]:
    if not values:
        return ["—", "—"]
    return [f"{percentile(values, 50):.0f}{note}", f"{percentile(values, 90):.0f}"]


def latency_table(runs: Sequence[StoreRun]) -> str:
    rows = []
    for first, end in WINDOWS:
        row: list[object] = [f"long sender, {first}–{end}"]
        for run in runs:
            note = "" if run.long.same_answers(first) else " (other answers!)"
            row += p50_p90(run.long.window(first, end), note)
        rows.append(row)
    row = ["fresh sender at the end, 1–10"]
    for run in runs:
        row += p50_p90(run.fresh.window(1, 10))
    rows.append(row)
    if any(run.long.last_window() != WINDOWS[-1] for run in runs):
        row = ["long sender, last ten sent (time limit)"]
        for run in runs:
            first, end = run.long.last_window()
            row += p50_p90(run.long.window(first, end), f" ({first}–{end})")
        rows.append(row)
    row = ["p50 of the last ten sent / p50 1–10"]
    for run in runs:
        first, last = run.long.window(1, 10), run.long.window(*run.long.last_window())
        ratio = percentile(last, 50) / percentile(first, 50) if first and last else float("nan")
        row += [f"**{ratio:.1f}×**", ""]
    rows.append(row)
    header = ["messages"]
    for run in runs:
        header += [f"{run.store} p50 (ms)", f"{run.store} p90 (ms)"]
    return markdown_table(header, rows)


def curve_table(runs: Sequence[StoreRun], bucket: int = 100) -> str:
    longest = max(len(run.long.turns) for run in runs)
    rows = []
    for first in range(1, longest + 1, bucket):
        row: list[object] = [f"{first}–{first + bucket - 1}"]
        for run in runs:
            row += p50_p90(run.long.window(first, first + bucket - 1))
        rows.append(row)
    header = ["messages"]
    for run in runs:
        header += [f"{run.store} p50 (ms)", f"{run.store} p90 (ms)"]
    return markdown_table(header, rows)


def profile_table(profiles: Sequence[StageProfile]) -> str:
    fresh, long = profiles
    rows = []
    for label, *_ in STAGES:
        rows.append(
            [
                label,
                f"{fresh.ms_per_message.get(label, 0.0):.1f}",
                f"{long.ms_per_message.get(label, 0.0):.1f}",
                f"{fresh.calls_per_message.get(label, 0.0):.1f} / "
                f"{long.calls_per_message.get(label, 0.0):.1f}",
            ]
        )
    return markdown_table(
        [
            "stage (wall time per message)",
            "fresh sender (ms)",
            f"long sender (ms), {long.session_events_before} events in its session",
            "calls per message fresh / long",
        ],
        rows,
    )


# The stages that do not contain one another: their growth adds up to the total's.
TOP_LEVEL = (1, 3, 4, 6, 7, 8, 11)


def growth_table(profiles: Sequence[StageProfile]) -> str:
    """Where the extra time of the long sender's turn goes, stage by stage."""
    fresh, long = profiles
    total_label = STAGES[0][0]
    growth_total = long.ms_per_message[total_label] - fresh.ms_per_message[total_label]
    rows = []
    accounted = 0.0
    for index in TOP_LEVEL:
        label = STAGES[index][0]
        growth = long.ms_per_message.get(label, 0.0) - fresh.ms_per_message.get(label, 0.0)
        accounted += growth
        rows.append([label, f"{growth:+.0f}", f"{growth / growth_total:.0%}"])
    rest = growth_total - accounted
    rows.append(["rest of the turn", f"{rest:+.0f}", f"{rest / growth_total:.0%}"])
    rows.append(["**total**", f"**{growth_total:+.0f}**", "100%"])
    return markdown_table(["stage", "long − fresh (ms per message)", "share of the growth"], rows)


def report(
    started: str, load_at_start: str, model: Path, runs: Sequence[StoreRun], profiled: bool
) -> str:
    stores = "\n".join(
        f"- {run.title}: {STORES[run.store][0]}; {len(run.long.turns)} messages sent by the "
        f"long sender in {run.minutes:.1f} min (limit: --max-minutes per store), load "
        f"average at the end {run.load}; the long conversation ended with "
        f"{run.events.get('events')} "
        f"stored events in {run.events.get('sessions')} session(s), "
        f"{run.events.get('latest_session_events')} in the last one; "
        f"{sum(not t.ok for t in run.long.turns + run.fresh.turns)} message(s) unanswered."
        for run in runs
    )
    body = f"""\
Latest run: {started}, `{COMMAND}{" --profile" if profiled else ""}`, model `{model.name}`.
Machine: {machine_line()}.
Load average (1/5/15 min) at start: {load_at_start}. Other people were training models
on the same 2 cores: single messages are noisy, compare windows and the fresh sender.

Setup: action server + Rasa server started by `bot.launcher` on free 127.0.0.1 ports,
fresh SQLite files, in-memory lock store. Each message is `POST /webhooks/rest/webhook`,
one at a time, latency measured at the client. Ten messages cycle (greeting, two
category reports that open the report form, two "never mind", thanks ×2, out of scope
×2, goodbye), so every window below holds the same ten messages, and got the same
answers as messages 1–10 unless marked. Tracker stores:

{stores}

{latency_table(runs)}

p50 per hundred messages of the long conversation:

{curve_table(runs)}
"""
    for run in runs:
        if not run.profiles:
            continue
        body += f"""
### Where the time goes: {run.title}

In-process replay (`--profile`): same model, tracker store and SQLite file, a running
action server; {run.profiles[1].messages} messages each for a fresh sender and for the
long sender ({run.profiles[1].history_events_before} events stored, of which
{run.profiles[1].session_events_before} in its current session, i.e. what is loaded),
timed per stage by wrapping Rasa's methods (wall time, inclusive; indented rows are
part of the row above; "applied_events" runs inside several stages). cProfile dumps:
`benchmarks/results/tracker-profile-{run.store}-{{fresh,long}}.prof`.

{profile_table(run.profiles)}

Growth attributed to the stages that do not overlap:

{growth_table(run.profiles)}
"""
    return body


def measure_store(
    store: str, model: Path, args: argparse.Namespace, run_id: str, deadline: float
) -> StoreRun:
    started = time.monotonic()
    long_sender = f"resident-long-{store}-{run_id}"
    with tempfile.TemporaryDirectory(prefix="tracker-latency-") as tmp:
        workdir = Path(tmp)
        endpoints, section = endpoints_file(store, workdir)
        print(f"\n=== {store}: tracker_store {section}", flush=True)
        with running_stack(model, workdir, endpoints=endpoints) as stack:
            long = converse(stack.rasa_url, long_sender, args.messages, deadline)
            fresh_sender = f"resident-fresh-{store}-{run_id}"
            fresh = converse(stack.rasa_url, fresh_sender, args.fresh_messages, deadline + 120)
        events = stored_events(workdir / "conversations.db", long_sender)
        print(f"stored events of {long_sender}: {events}", flush=True)
        run = StoreRun(
            store, section, long, fresh, events, (time.monotonic() - started) / 60, load_average()
        )
        if store in args.profiled:
            with running_stack(model, workdir, "actions", endpoints) as stack:
                run.profiles = run_profile(
                    model, stack, endpoints, long_sender, args.profile_messages, store
                )
    return run


def runs_from_json(payload: dict[str, Any]) -> list[StoreRun]:
    """The runs of a results file (`--from-json`): re-render without measuring again."""
    runs = []
    for data in payload["runs"]:
        conversations = []
        for key in ("long", "fresh"):
            turns = [Turn(**t) for t in data[key]]
            conversations.append(Conversation(data.get(f"{key}_sender", key), turns))
        profiles = [StageProfile(**p) for p in data.get("profiles") or []] or None
        runs.append(
            StoreRun(
                data["store"],
                data["tracker_store"],
                conversations[0],
                conversations[1],
                data["events"],
                data["minutes"],
                data["load"],
                profiles,
            )
        )
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--fresh-messages", type=int, default=10)
    parser.add_argument("--stores", default=",".join(STORES), help=", ".join(STORES))
    parser.add_argument("--max-minutes", type=float, default=20.0, help="per store")
    parser.add_argument("--model", type=Path, help="default: the model of the current inputs")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="rasa-sql",
        default="",
        help="then profile these stores in process (default when given: rasa-sql)",
    )
    parser.add_argument("--profile-messages", type=int, default=30)
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--from-json", type=Path, help="re-render the README from a results file")
    args = parser.parse_args(argv)
    if args.from_json:
        payload = json.loads(args.from_json.read_text(encoding="utf-8"))
        runs = runs_from_json(payload)
        body = report(
            payload["started"],
            payload["load_at_start"],
            Path(payload["model"]),
            runs,
            any(run.profiles for run in runs),
        )
        print(body)
        if not args.no_readme:
            update_readme_section("Latency against conversation length", body)
        return 0
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or set(stores) - set(STORES):
        parser.error(f"--stores: choose from {', '.join(STORES)}")
    profiled = [s.strip() for s in args.profile.split(",") if s.strip()]
    if set(profiled) - set(stores):
        parser.error("--profile: only stores that are measured")
    if not 10 <= args.messages <= 5000:
        parser.error("--messages must be between 10 and 5000")

    os.chdir(PROJECT_ROOT)
    os.environ.update(OFFLINE_ENV)
    os.environ["LOG_LEVEL"] = "WARNING"
    logging.basicConfig(level=logging.WARNING)
    model = (args.model or launcher.ensure_model()).resolve()
    started, load_at_start = now_text(), load_average()
    run_id = time.strftime("%Y%m%d-%H%M%S")

    args.profiled = profiled
    runs = [
        measure_store(store, model, args, run_id, time.monotonic() + args.max_minutes * 60)
        for store in stores
    ]

    body = report(started, load_at_start, model, runs, bool(profiled))
    print("\n" + body)
    for run in runs:
        for profile in run.profiles or []:
            print(f"\ncProfile, {run.store}, {profile.sender}:\n{profile.cprofile_top}")
    if not args.no_readme:
        update_readme_section("Latency against conversation length", body)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"tracker-latency-{run_id}.json"
    payload = {
        "started": started,
        "load_at_start": load_at_start,
        "model": str(model),
        "runs": [
            {
                "store": run.store,
                "tracker_store": run.tracker_store,
                "minutes": run.minutes,
                "load": run.load,
                "events": run.events,
                "long_sender": run.long.sender,
                "fresh_sender": run.fresh.sender,
                "long": [vars(t) for t in run.long.turns],
                "fresh": [vars(t) for t in run.fresh.turns],
                "profiles": [vars(p) for p in run.profiles or []],
            }
            for run in runs
        ],
    }
    raw.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"Raw results: {raw.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
