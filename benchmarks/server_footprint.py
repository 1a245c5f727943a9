"""Training time of the full model from scratch, and the servers' resident memory.

    .venv/bin/python benchmarks/server_footprint.py                 # train, then measure
    .venv/bin/python benchmarks/server_footprint.py --model PATH    # measure memory only

Training runs `bot.launcher.ensure_model(force=True)` (what `python -m
bot.launcher train --force` runs: `rasa train`, NLU + dialogue) in a child
process, with an empty training cache and a temporary models directory, so it is
from scratch and does not replace models/ files that other processes may be
loading. Wall time and the child's CPU time (user + system) are reported.

Memory: the Rasa server (`rasa run --model ... --enable-api`, endpoints.yml with
a SQLite tracker store on a temporary file) and the action server are started
by `bot.launcher` on free 127.0.0.1 ports. Once `GET /` answers 200 and
`GET /status` names the model, VmRSS of each process and its children is read
from /proc, again after 20 messages through the REST channel.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench_common import (
    OFFLINE_ENV,
    PROJECT_ROOT,
    RESULTS_DIR,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    update_readme_section,
)
from tracker_latency import MESSAGES, running_stack, send

from bot import launcher
from bot.settings import get_settings

COMMAND = ".venv/bin/python benchmarks/server_footprint.py"
TRAIN_SNIPPET = (
    "import sys; from pathlib import Path; from bot.launcher import ensure_model; "
    "print(ensure_model(force=True, models_dir=Path(sys.argv[1])))"
)


@dataclass
class Training:
    wall_seconds: float
    cpu_seconds: float
    load_before: str
    load_after: str
    model: Path


def train_from_scratch(workdir: Path, timeout: float = 1800) -> Training:
    env = launcher.rasa_environment(get_settings())
    env.update(OFFLINE_ENV)
    env["RASA_CACHE_DIRECTORY"] = str(workdir / "cache")  # empty: nothing reused
    models = workdir / "models"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = load_average()
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", TRAIN_SNIPPET, str(models)],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        timeout=timeout,
        stdout=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    model = Path(completed.stdout.strip().splitlines()[-1])
    return Training(wall, cpu, load_before, load_average(), model)


def children(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def rss_mib(pid: int) -> tuple[float, int]:
    """Summed VmRSS of `pid` and its descendants (MiB), and how many processes."""
    total_kib = 0
    tree = children(pid)
    for process in tree:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024, len(tree)


def wait_for_model(rasa_url: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{rasa_url}/status", timeout=5) as response:
            status = json.loads(response.read())
        if status.get("model_file"):
            return str(status["model_file"])
        time.sleep(0.5)
    raise TimeoutError("the Rasa server did not report a loaded model")


def measure_memory(model: Path, workdir: Path) -> dict[str, float | int | str]:
    figures: dict[str, float | int | str] = {}
    with running_stack(model, workdir) as stack:
        rasa_url = stack.rasa_url
        figures["model_file"] = wait_for_model(rasa_url)
        actions, rasa = stack.pid("actions"), stack.pid("rasa")
        figures["rasa_rss_loaded"], figures["rasa_processes"] = rss_mib(rasa)
        figures["actions_rss_loaded"], figures["actions_processes"] = rss_mib(actions)
        for index in range(20):
            send(rasa_url, "footprint", MESSAGES[index % len(MESSAGES)])
        figures["rasa_rss_after_20"], _ = rss_mib(rasa)
        figures["actions_rss_after_20"], _ = rss_mib(actions)
    return figures


def report(started: str, training: Training | None, memory: dict[str, float | int | str]) -> str:
    rows = []
    if training:
        rows.append(
            [
                "full model from scratch (`ensure_model(force=True)`: rasa train, NLU + core)",
                f"{training.wall_seconds:.0f} s wall, {training.cpu_seconds:.0f} s CPU "
                f"(load avg before {training.load_before}, after {training.load_after})",
            ]
        )
    rows += [
        [
            "Rasa server RSS, model loaded (`rasa run --enable-api`, incl. children)",
            f"{memory['rasa_rss_loaded']:.0f} MiB ({memory['rasa_processes']} process(es))",
        ],
        ["Rasa server RSS after 20 messages", f"{memory['rasa_rss_after_20']:.0f} MiB"],
        [
            "action server RSS (`rasa run actions`, incl. children)",
            f"{memory['actions_rss_loaded']:.0f} MiB at start, "
            f"{memory['actions_rss_after_20']:.0f} MiB after 20 messages",
        ],
    ]
    return f"""\
Latest run: {started}, `{COMMAND}`.
Machine: {machine_line()}.
Model: `{Path(str(memory["model_file"])).name}`.

{markdown_table(["what", "figure"], rows)}

Training is what `.venv/bin/python -m bot.launcher train --force` runs, in a child
process with an empty training cache (`RASA_CACHE_DIRECTORY` on a temporary
directory) and a temporary models directory; wall time depends on what else runs
on the 2 cores, CPU time much less. RSS is VmRSS from /proc/PID/status, summed
over the process and its descendants.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="measure this model; no training")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)

    os.chdir(PROJECT_ROOT)
    os.environ.update(OFFLINE_ENV)
    started = now_text()
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        workdir = Path(tmp)
        training = None if args.model else train_from_scratch(workdir)
        model = args.model or training.model  # type: ignore[union-attr]
        if training:
            print(f"trained in {training.wall_seconds:.0f} s: {model}", flush=True)
        memory = measure_memory(model.resolve(), workdir)

    body = report(started, training, memory)
    print("\n" + body)
    if not args.no_readme:
        update_readme_section("Training time and server footprint", body)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"footprint-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {"started": started, "memory": memory, "training": training and vars(training)}
    raw.write_text(json.dumps(payload, default=str, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
