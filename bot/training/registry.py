"""Models on disk, their metadata and the deployment history.

A model `NAME` is the file `models_dir/NAME.tar.gz`; its metadata is the JSON
sidecar `models_dir/NAME.json` (a model trained by the launcher has none until
it is first scored or deployed). The history of deployments is an append-only
JSON list in `model_registry_dir/deployments.json`; the model serving now and the
model a rollback returns to are computed from it.

Every write goes to a temporary file first and replaces the old one, so a reader
never sees half a file; writers of the history hold `deploy.lock`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.settings import Settings

MODEL_SUFFIX = ".tar.gz"
# Model names end up in URLs, file names and command lines: keep them plain.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


class RegistryError(Exception):
    """A model name or file that the registry cannot use."""


def utc_now_iso(timespec: str = "seconds") -> str:
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def model_name(path: Path | str) -> str:
    """`models/model-x.tar.gz` -> `model-x`."""
    name = Path(path).name
    return name[: -len(MODEL_SUFFIX)] if name.endswith(MODEL_SUFFIX) else Path(name).stem


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or name.endswith(MODEL_SUFFIX):
        raise RegistryError(f"不是有效的模型名称：{name!r}")
    return name


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` through a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None  # a damaged file counts as missing; the next write replaces it


@dataclass
class ModelRecord:
    """The sidecar of one model. Scores are `evaluation.Scores.to_dict()`."""

    name: str
    path: str
    created_at: str = ""
    # training inputs: all of them (as the launcher's fingerprint), the NLU and
    # dialogue data alone, and the config
    fingerprint: str = ""
    data_hash: str = ""
    config_hash: str = ""
    examples: int | None = None
    epochs: int | None = None
    data_dirs: list[str] = field(default_factory=list)
    config_file: str = ""
    trained_by: str = ""
    job_id: str = ""
    training_seconds: float | None = None
    # evaluation on the held-out set identified by holdout_hash
    holdout_hash: str = ""
    scores: dict[str, Any] | None = None
    # the model serving when this one was evaluated, with its scores on the same
    # held-out set, and what the guard said then
    compared_with: dict[str, Any] | None = None
    guard: dict[str, Any] | None = None
    # the latest deployment of this model (the history keeps all of them)
    deployed_at: str | None = None
    deployed_by: str | None = None
    override_reason: str | None = None
    deploy_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def scores_on(self, holdout_hash: str) -> dict[str, Any] | None:
        """The scores, if they were measured on this held-out set."""
        if self.scores and self.holdout_hash == holdout_hash:
            return self.scores
        return None


@dataclass
class Deployment:
    """One line of the deployment history."""

    model: str
    path: str
    action: str  # deploy | rollback
    at: str
    by: str
    override_reason: str | None = None
    previous: str | None = None
    previous_path: str | None = None
    guard: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Registry:
    """The models of `models_dir` and the state kept in `state_dir`."""

    def __init__(self, models_dir: Path, state_dir: Path) -> None:
        self.models_dir = Path(models_dir).resolve()
        self.state_dir = Path(state_dir).resolve()

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        return cls(settings.models_dir, settings.model_registry_dir)

    # -- paths ---------------------------------------------------------------

    @property
    def deployments_file(self) -> Path:
        return self.state_dir / "deployments.json"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def training_lock_file(self) -> Path:
        return self.state_dir / "training.lock"

    @property
    def deploy_lock_file(self) -> Path:
        return self.state_dir / "deploy.lock"

    def model_path(self, name: str) -> Path:
        return self.models_dir / f"{check_name(name)}{MODEL_SUFFIX}"

    def sidecar_path(self, name: str) -> Path:
        return self.models_dir / f"{check_name(name)}.json"

    # -- models --------------------------------------------------------------

    def read_record(self, name: str) -> ModelRecord | None:
        data = read_json(self.sidecar_path(name))
        return ModelRecord.from_dict(data) if isinstance(data, dict) else None

    def write_record(self, record: ModelRecord) -> None:
        write_json_atomic(self.sidecar_path(record.name), record.to_dict())

    def record_for(self, name: str, path: Path | None = None) -> ModelRecord:
        """The sidecar of a model, or a minimal record made from its file."""
        record = self.read_record(name) if NAME_RE.match(name) else None
        if record is not None:
            return record
        path = path or self.model_path(name)
        created = ""
        if path.exists():
            created = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(
                timespec="seconds"
            )
        fingerprint = name[len("model-") :] if re.fullmatch(r"model-[0-9a-f]{16}", name) else ""
        return ModelRecord(name=name, path=str(path), created_at=created, fingerprint=fingerprint)

    def update_record(self, name: str, path: Path | None = None, **changes: Any) -> ModelRecord:
        """Change fields of a model's sidecar (created from the file when missing).

        Models outside models_dir (not ours) are left alone; the record is returned.
        """
        record = self.record_for(name, path)
        for key, value in changes.items():
            setattr(record, key, value)
        if Path(record.path).resolve().parent == self.models_dir and NAME_RE.match(name):
            self.write_record(record)
        return record

    def list_models(self) -> list[ModelRecord]:
        """Every model file of models_dir, newest first."""
        if not self.models_dir.is_dir():
            return []
        records = []
        for path in self.models_dir.glob(f"*{MODEL_SUFFIX}"):
            name = model_name(path)
            if NAME_RE.match(name):
                records.append(self.record_for(name, path))
        records.sort(key=lambda r: r.created_at, reverse=True)
        return records

    def resolve(self, name: str) -> Path | None:
        """The file of a model: in models_dir, or where the history saw it."""
        if NAME_RE.match(name):
            path = self.model_path(name)
            if path.exists():
                return path
        for deployment in reversed(self.deployments()):
            for candidate, candidate_path in (
                (deployment.model, deployment.path),
                (deployment.previous, deployment.previous_path),
            ):
                if candidate == name and candidate_path and Path(candidate_path).exists():
                    return Path(candidate_path)
        return None

    # -- deployments ----------------------------------------------------------

    def deployments(self) -> list[Deployment]:
        data = read_json(self.deployments_file)
        if not isinstance(data, list):
            return []
        return [Deployment.from_dict(item) for item in data if isinstance(item, dict)]

    def append_deployment(self, deployment: Deployment) -> None:
        """Add to the history (callers hold `deploy_lock()`)."""
        history = [d.to_dict() for d in self.deployments()]
        history.append(deployment.to_dict())
        write_json_atomic(self.deployments_file, history)

    def serving_stack(self) -> list[tuple[str, str]]:
        """(name, path) of the models deployed one over the other; the last serves.

        A deployment puts its model on top (the first one also puts the model it
        replaced underneath); a rollback takes the top off again. So rolling back
        twice goes back two deployments, not back and forth.
        """
        stack: list[tuple[str, str]] = []
        for deployment in self.deployments():
            if deployment.action == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1][0] != deployment.model:
                    stack.append((deployment.model, deployment.path))
                continue
            if not stack and deployment.previous and deployment.previous_path:
                stack.append((deployment.previous, deployment.previous_path))
            if stack and stack[-1][0] == deployment.model:
                continue  # deployed again: already on top
            stack.append((deployment.model, deployment.path))
        return stack

    def deployed(self) -> tuple[str, Path] | None:
        """The model the history says is serving, if its file still exists."""
        stack = self.serving_stack()
        if stack and Path(stack[-1][1]).exists():
            return stack[-1][0], Path(stack[-1][1])
        return None

    def rollback_target(self) -> tuple[str, Path] | None:
        """The model a rollback returns to (the one deployed before the current)."""
        stack = self.serving_stack()
        if len(stack) >= 2:
            return stack[-2][0], Path(stack[-2][1])
        return None

    @contextmanager
    def deploy_lock(self, timeout: float = 600) -> Iterator[None]:
        """One deployment at a time (across processes): swap and record together."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.deploy_lock_file, "a+") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError("另一个上线操作仍在进行，请稍后再试") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
