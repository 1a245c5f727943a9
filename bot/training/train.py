"""Training a model: the one path, and the one fingerprint of what it is trained from.

`make train` / `make run` (bot.launcher) and the admin's retraining jobs
(bot.training.jobs) both train through `train()` and name what a model was
trained from with `fingerprint()`: a SHA-256 over the relative paths and the
contents of its inputs (config, domain, training data, the jieba dictionary
and our NLU component). "Is the model stale?" is then one file lookup.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from bot.settings import PROJECT_ROOT
from bot.training.registry import MODEL_SUFFIX

# Only these folders hold Rasa training data (data/ also holds the taxonomy and
# the grid directory, which Rasa must not try to read).
TRAINING_DATA = ("data/nlu", "data/rules", "data/stories")
# What the pipeline reads besides its config, domain and data.
PIPELINE_INPUTS = ("data/dict", "bot/nlu")
# What a trained model depends on; a change to any of it means a new model.
TRAINING_INPUTS = ("config.yml", "domain.yml", *TRAINING_DATA, *PIPELINE_INPUTS)


class TrainingFailed(RuntimeError):
    """`rasa train` failed or wrote no model."""


def input_files(paths: Iterable[Path]) -> list[Path]:
    """The files of `paths` (folders walked, caches skipped), sorted, each once."""
    files: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files.update(
                p.resolve()
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        elif path.is_file():
            files.add(path.resolve())
    return sorted(files)


def fingerprint(paths: Iterable[Path], root: Path = PROJECT_ROOT) -> str:
    """16 hex digits of SHA-256 over the files' paths (relative to `root`) and contents."""
    digest = hashlib.sha256()
    root = root.resolve()
    for file in input_files(paths):
        try:
            label = str(file.relative_to(root))
        except ValueError:
            label = file.name  # outside the project (a temporary copy): content counts
        digest.update(label.encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def training_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """The fingerprint of the project's own training inputs."""
    return fingerprint([root / entry for entry in TRAINING_INPUTS], root)


def train(
    config: Path,
    domain: Path,
    data_dirs: Sequence[Path],
    out_dir: Path,
    name: str,
    *,
    env: Mapping[str, str],
    command: Sequence[str] | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Path:
    """Run `rasa train` into `out_dir/<name>.tar.gz` and return that path.

    Its output goes to this process's stdout as it comes; `on_line` also gets
    every line (tqdm redraws its progress bar with \\r: each redraw is a line),
    `on_start` the process (to stop it). `command` replaces `python -m rasa`
    (tests use a fake trainer). Raises TrainingFailed.
    """
    argv = [
        *(command or [sys.executable, "-m", "rasa"]),
        "train",
        "--config",
        str(config),
        "--domain",
        str(domain),
        "--data",
        *[str(d) for d in data_dirs],
        "--out",
        str(out_dir),
        "--fixed-model-name",
        name,
    ]
    child = subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if on_start is not None:
        on_start(child)
    assert child.stdout is not None
    buffer = b""
    while chunk := child.stdout.read1(65536):  # type: ignore[attr-defined]
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        if on_line is None:
            continue
        buffer += chunk
        *lines, buffer = re.split(rb"[\r\n]", buffer)
        for raw in lines:
            on_line(raw.decode("utf-8", "replace"))
    if buffer and on_line is not None:
        on_line(buffer.decode("utf-8", "replace"))
    code = child.wait()
    model = out_dir / f"{name}{MODEL_SUFFIX}"
    if code != 0 or not model.exists():
        raise TrainingFailed(f"训练失败（rasa train 退出码 {code}）")
    return model
