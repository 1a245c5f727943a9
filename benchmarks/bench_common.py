"""Helpers shared by the benchmark scripts: machine facts, percentiles, README.

The scripts are run as files (`python benchmarks/x.py`), so this module is
imported as a top-level module from the scripts' own directory.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"

# Every process a benchmark starts talks to 127.0.0.1 only: no usage telemetry.
OFFLINE_ENV = {"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}


def offline_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(OFFLINE_ENV)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 when it is gone):
    much less sensitive to the other jobs on the machine than wall time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine_line() -> str:
    return (
        f"{os.cpu_count()} cores (nproc), CPU: {cpu_model()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def now_text() -> str:
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def percentile(values: Sequence[float], q: float) -> float:
    """Percentile with linear interpolation (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


README_PREAMBLE = """# Benchmarks

Measurements behind the choices in `config.yml`, `domain.yml` and `endpoints.yml`.
Each section is rewritten by the script named in it; raw figures go to
`benchmarks/results/` (not committed).
"""


def update_readme_section(title: str, body: str, readme: Path = README) -> None:
    """Replace the `## title` section of the README (or append it), keep the rest."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else README_PREAMBLE
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
