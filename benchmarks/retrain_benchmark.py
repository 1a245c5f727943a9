"""Retrain, evaluate and deploy the full model into a running Rasa server.

    .venv/bin/python benchmarks/retrain_benchmark.py

What `python -m bot nlu retrain --deploy` does, timed end to end on the
project's data (data/nlu, ~1,700 examples) with the real config.yml (DIET 100
epochs): a training job (bot.training.jobs: `rasa train`, NLU + dialogue, with
an EMPTY training cache, so from scratch), the evaluation of the current and
the new model on the held-out set (a subprocess loading both), and the
hot-swap into a running Rasa server with `PUT /model`.

The Rasa server (with the action server) runs the launcher's model on free
127.0.0.1 ports, with a token, SQLite tracker store in a temporary folder. A
resident talks to it through the REST channel every 2 s during the whole job:
latency and failures of those turns show what the training and the swap cost
the conversations, and the resident's tracker, read after the swap, must
still hold every message sent before it.

Figures go to benchmarks/README.md ("Retrain and deploy") and
benchmarks/results/retrain-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

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
from bot.settings import load_settings
from bot.training import jobs
from bot.training.registry import Registry

COMMAND = ".venv/bin/python benchmarks/retrain_benchmark.py"
BUDGET_SECONDS = 300  # the issue: under 5 minutes on 2 cores
TURN_INTERVAL = 2.0
MESSAGES = ["你好", "请问低保怎么申请", "谢谢", "你是机器人吗", "好的", "再见"]
OVERRIDE = "基准测试：无论评估结果如何都上线，以计时上线这一步"


@dataclass
class Turn:
    at: float  # seconds since the job started
    ms: float
    ok: bool
    phase: str  # the job's status when the turn was sent


@dataclass
class Resident:
    """Talks to the REST channel every TURN_INTERVAL seconds until stopped."""

    rasa_url: str
    registry: Registry
    job_id: str = ""
    sender: str = field(default_factory=lambda: "bench-" + secrets.token_hex(6))
    turns: list[Turn] = field(default_factory=list)
    sent_texts: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        index = 0
        while not self.stop.is_set():
            text = MESSAGES[index % len(MESSAGES)]
            index += 1
            phase = "?"
            if self.job_id:
                job = jobs.read_job(self.registry, self.job_id, check_alive=False)
                phase = job.status if job else "?"
            began = time.monotonic()
            ok = True
            try:
                body = json.dumps({"sender": self.sender, "message": text}).encode()
                request = urllib.request.Request(
                    f"{self.rasa_url}/webhooks/rest/webhook",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=120) as response:
                    ok = response.status == 200 and bool(json.loads(response.read()))
            except (urllib.error.URLError, OSError, ValueError):
                ok = False
            if ok:
                self.sent_texts.append(text)
            self.turns.append(
                Turn(began - self.started, (time.monotonic() - began) * 1000, ok, phase)
            )
            self.stop.wait(max(0.0, TURN_INTERVAL - (time.monotonic() - began)))


def api_get(rasa_url: str, path: str, token: str) -> Any:
    url = f"{rasa_url}{path}?{urllib.parse.urlencode({'token': token})}"
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model to serve first (default: launcher's)")
    args = parser.parse_args(argv)
    os.chdir(PROJECT_ROOT)
    model = (args.model or launcher.ensure_model()).resolve()
    started_text = now_text()
    load_at_start = load_average()

    with tempfile.TemporaryDirectory(prefix="retrain-bench-") as tmp:
        work = Path(tmp)
        token = secrets.token_urlsafe(16)
        settings = replace(
            load_settings(),
            rasa_port=free_port(),
            actions_port=free_port(),
            database_url=f"sqlite:///{work / 'neighbourhood.db'}",
            tracker_database_url=f"sqlite:///{work / 'conversations.db'}",
            rasa_auth_token=token,
            models_dir=work / "models",
            model_registry_dir=work / "registry",
        )
        settings = replace(settings, rasa_url=f"http://127.0.0.1:{settings.rasa_port}")
        env = launcher.rasa_environment(settings)
        env.update(
            {
                **OFFLINE_ENV,
                "DATABASE_URL": settings.database_url,
                "RASA_PORT": str(settings.rasa_port),
                "ACTIONS_PORT": str(settings.actions_port),
                "WECOM_API_BASE": "http://127.0.0.1:9",
                "LOG_LEVEL": "WARNING",
            }
        )
        launcher.prepare_database(env)
        services = [s for s in launcher.services(settings, model) if s.name in ("actions", "rasa")]
        registry = Registry.from_settings(settings)
        job_env = {**env, "RASA_CACHE_DIRECTORY": str(work / "cache")}  # empty: from scratch
        try:
            launcher.start(services, env, timeout=300)
            resident = Resident(settings.rasa_url, registry)
            talker = threading.Thread(target=resident.run, daemon=True)
            talker.start()
            time.sleep(3 * TURN_INTERVAL)  # a conversation under way before the job
            began = time.monotonic()
            resident.started = began
            result = jobs.start_job(
                registry,
                settings,
                requested_by="benchmark",
                options=jobs.JobOptions(auto_deploy=True, override_reason=OVERRIDE),
                env=job_env,
            )
            resident.job_id = result.job.id
            job = jobs.wait_for(
                registry,
                result.job.id,
                poll=1.0,
                on_change=lambda j: print(
                    f"[{time.monotonic() - began:6.1f} s] {j.status_label} {j.stage_detail} "
                    f"{j.epoch or ''}/{j.epochs or ''}",
                    flush=True,
                ),
            )
            total = time.monotonic() - began
            if result.process is not None:
                result.process.wait()
            time.sleep(3 * TURN_INTERVAL)  # and after the swap
            resident.stop.set()
            talker.join(timeout=150)
            load_after = load_average()
            status = api_get(settings.rasa_url, "/status", token)
            tracker = api_get(settings.rasa_url, f"/conversations/{resident.sender}/tracker", token)
        finally:
            launcher.stop(services)

    if job.status != "done" or job.result != "deployed":
        print(f"job {job.id}: {job.status} {job.result} {job.error}")
        for line in job.log_tail:
            print("  |", line)
        return 1
    texts = [e.get("text") for e in tracker.get("events", []) if e.get("event") == "user"]
    kept = texts == resident.sent_texts
    figures = {
        "started": started_text,
        "machine": machine_line(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_after,
        "job": job.to_dict(),
        "total_seconds": total,
        "served_after": status.get("model_file"),
        "turns": [asdict(t) for t in resident.turns],
        "tracker_kept_every_message": kept,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"retrain-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    body = report(figures, job, total, resident, kept)
    print("\n" + body)
    update_readme_section("Retrain and deploy", body)
    print(f"Raw results: {out.relative_to(PROJECT_ROOT)}")
    return 0 if total < BUDGET_SECONDS else 2


def report(figures: dict, job: jobs.Job, total: float, resident: Resident, kept: bool) -> str:
    new = (job.scores or {}).get("new") or {}
    current = (job.scores or {}).get("current") or {}
    other = total - (job.training_seconds or 0) - (job.evaluation_seconds or 0)
    other -= job.deploy_seconds or 0
    rows = [
        ["training (`rasa train`, NLU + dialogue, empty cache)", f"{job.training_seconds:.0f}"],
        [
            f"evaluation (current + new model, {new.get('examples', '?')} held-out messages)",
            f"{job.evaluation_seconds:.0f}",
        ],
        ["deployment (`PUT /model`: Rasa loads the model)", f"{job.deploy_seconds:.1f}"],
        ["job start, input hashing, bookkeeping", f"{other:.1f}"],
        [f"**total** (budget {BUDGET_SECONDS} s)", f"**{total:.0f}**"],
    ]
    by_phase: dict[str, list[Turn]] = {}
    for turn in resident.turns:
        by_phase.setdefault(turn.phase, []).append(turn)
    turn_rows = []
    for phase in ("?", "training", "evaluating", "deploying", "done"):
        turns = by_phase.get(phase)
        if not turns:
            continue
        ms = [t.ms for t in turns]
        label = {"?": "before the job"}.get(phase, f"while {phase}")
        if phase == "done":
            label = "after the swap"
        turn_rows.append(
            [
                label,
                len(turns),
                sum(not t.ok for t in turns),
                f"{percentile(ms, 50):.0f}",
                f"{max(ms):.0f}",
            ]
        )
    verdict = "within" if total < BUDGET_SECONDS else "**over**"
    guard = "not worse" if (job.guard or {}).get("allowed") else "worse (overridden)"
    return f"""Latest run: {figures["started"]}, `{COMMAND}`.
Machine: {figures["machine"]}.
Load average (1/5/15 min) at start: {figures["load_average_at_start"]}, at the end:
{figures["load_average_at_end"]}.

One retraining as `python -m bot nlu retrain --deploy` runs it (bot.training.jobs): the
project's data ({_examples()} training examples in data/nlu) with config.yml (DIET
{job.epochs or "?"} epochs), scored on {new.get("examples", "?")} held-out messages, deployed
into a running Rasa server: **{total:.0f} s** in all, {verdict} the {BUDGET_SECONDS}-s
budget of the issue.

{markdown_table(["step", "seconds"], rows)}

Scores on the held-out set: current accuracy {current.get("accuracy", float("nan")):.3f} /
macro-F1 {current.get("macro_f1", float("nan")):.3f}, new {new.get("accuracy", float("nan")):.3f} /
{new.get("macro_f1", float("nan")):.3f} (the same data, config and seed: the same model up
to floating-point noise; the guard's verdict: {guard}; the benchmark deploys either way,
to time the swap).

A resident talking through the REST channel every {TURN_INTERVAL:.0f} s during the job:

{markdown_table(["turns", "sent", "failed", "p50 (ms)", "max (ms)"], turn_rows)}

- The swap: `PUT /model` loads the new model inside the Rasa process and replaces its
  agent; turns arriving meanwhile wait (the max latency "while deploying"), none fails.
  After the swap the resident's tracker still held every message sent before it:
  **{"yes" if kept else "NO"}** (the tracker store is untouched by a swap).
- Training and evaluation run in other processes (`rasa train`, `python -m bot nlu
  evaluate`); on 2 cores they compete with the server for CPU, which shows in the turns'
  latency while training.
- The guard (bot/training/guard.py) lets a model be deployed when its accuracy and
  macro-F1 on the held-out set are at most 0.005 below the current model's; otherwise an
  admin must override with a written reason (kept in the deployment history).
- Several Rasa servers pick a new model up from a model server (endpoints.yml `models:`),
  not `PUT /model`, which swaps one process.
"""


def _examples() -> int:
    return jobs.count_examples([PROJECT_ROOT / "data" / "nlu"])


if __name__ == "__main__":
    raise SystemExit(main())
