"""Hot-swap a model into the running Rasa server, record it, roll it back.

`PUT /model {"model_file": path}` (Rasa's HTTP API, `?token=` when the server
runs with `--auth-token`) loads the model in that server process and replaces
its agent; the conversations live in the tracker store and carry on. Rasa loads
the new model before replacing the old agent, so a model that fails to load
leaves the old one serving. While it loads (seconds) the server answers nothing
else: messages wait, they are not lost.

`PUT /model` swaps one process only. Several Rasa servers pick new models up
from a model server instead (endpoints.yml `models: url, wait_time_between_pulls`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.settings import Settings, development_rasa_token
from bot.training.evaluation import Scores
from bot.training.guard import GuardDecision, check, check_override_reason
from bot.training.registry import (
    Deployment,
    Registry,
    model_name,
    utc_now_iso,
)

DEPLOY_TIMEOUT = 600  # loading a model takes seconds; a busy machine, minutes


class DeployError(Exception):
    """The model could not be deployed; the serving model is unchanged."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # Rasa's HTTP status; None: the server did not answer


class DeployRefused(DeployError):
    """The guard said no and nobody overrode it."""

    def __init__(self, decision: GuardDecision) -> None:
        super().__init__("；".join(decision.reasons) or "新模型不如当前模型")
        self.decision = decision


class RasaApi:
    """The few calls of Rasa's HTTP API this module needs (blocking; use a thread)."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> RasaApi:
        # the CLI in another shell than `make run` finds the development token in var/
        return cls(settings.rasa_url, settings.rasa_auth_token or development_rasa_token())

    def _url(self, path: str) -> str:
        query = "?" + urllib.parse.urlencode({"token": self.token}) if self.token else ""
        return f"{self.base_url}{path}{query}"

    def _call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(
            self._url(path),
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:500]
            try:
                detail = json.loads(detail).get("message", detail)
            except (ValueError, AttributeError):
                pass
            if error.code in (401, 403):
                detail = f"Rasa 拒绝了令牌（RASA_AUTH_TOKEN 不一致？）{detail}"
            raise DeployError(
                f"Rasa {method} {path}: HTTP {error.code} {detail}", error.code
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise DeployError(f"无法连接 Rasa 服务器 {self.base_url}：{error}") from None
        return json.loads(raw) if raw else None

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status") or {}

    def put_model(self, path: Path) -> None:
        self._call("PUT", "/model", {"model_file": str(Path(path).resolve())}, DEPLOY_TIMEOUT)

    def parse(self, text: str) -> dict[str, Any]:
        return self._call("POST", "/model/parse", {"text": text}) or {}


@dataclass(frozen=True)
class CurrentModel:
    name: str
    path: Path | None  # None: serving, but its file is not known here
    source: str  # rasa (asked the server) | history | launcher


def current_model(registry: Registry, api: RasaApi | None) -> CurrentModel | None:
    """The model serving now: what the Rasa server says, else the history's last
    deployment, else the model the launcher would start for the current inputs."""
    from bot import launcher
    from bot.training.train import training_fingerprint

    if api is not None:
        try:
            file = api.status().get("model_file")
        except DeployError as error:
            if error.status is not None:
                raise  # it answered, but not to us (token): guessing would mislead
            file = None
        if file:
            name = model_name(file)
            return CurrentModel(name, registry.resolve(name), "rasa")
    deployed = registry.deployed()
    if deployed is not None:
        return CurrentModel(deployed[0], deployed[1], "history")
    path = launcher.model_path(training_fingerprint(), registry.models_dir)
    if path.exists():
        return CurrentModel(model_name(path), path, "launcher")
    return None


def comparable_scores(
    registry: Registry, name: str, current: CurrentModel | None
) -> tuple[Scores | None, Scores | None]:
    """(current's scores, the model's scores) on the model's held-out set."""
    record = registry.record_for(name)
    new = Scores.from_dict(record.scores) if record.scores and record.holdout_hash else None
    if current is None or new is None:
        return None, new
    compared = record.compared_with or {}
    if compared.get("model") == current.name and compared.get("scores"):
        if compared.get("holdout_hash") == record.holdout_hash:
            return Scores.from_dict(compared["scores"]), new
    current_record = registry.record_for(current.name, current.path)
    scores = current_record.scores_on(record.holdout_hash)
    return (Scores.from_dict(scores) if scores else None), new


def guard_for(registry: Registry, name: str, current: CurrentModel | None) -> GuardDecision:
    current_scores, new_scores = comparable_scores(registry, name, current)
    return check(current_scores, new_scores, has_current=current is not None)


def deploy(
    registry: Registry,
    api: RasaApi,
    name: str,
    *,
    by: str,
    override_reason: str | None = None,
    rollback: bool = False,
) -> Deployment:
    """Swap model `name` into the server, if the guard (or an admin) allows it."""
    with registry.deploy_lock():
        path = registry.resolve(name)
        if path is None:
            raise DeployError(f"模型 {name} 的文件不存在")
        current = current_model(registry, api)
        if current is not None and current.name == name:
            raise DeployError(f"模型 {name} 已经在使用中")
        decision = None
        reason = None
        if not rollback:
            decision = guard_for(registry, name, current)
            if not decision.allowed:
                if not override_reason:
                    raise DeployRefused(decision)
                try:
                    reason = check_override_reason(override_reason)
                except ValueError as error:
                    raise DeployError(str(error)) from None
        elif override_reason:
            reason = " ".join(override_reason.split())
        api.put_model(path)
        deployment = Deployment(
            model=name,
            path=str(path),
            action="rollback" if rollback else "deploy",
            at=utc_now_iso(),
            by=by,
            override_reason=reason,
            previous=current.name if current else None,
            previous_path=str(current.path) if current and current.path else None,
            guard=decision.to_dict() if decision else None,
        )
        registry.append_deployment(deployment)
        record = registry.record_for(name, path)
        registry.update_record(
            name,
            path,
            deployed_at=deployment.at,
            deployed_by=by,
            override_reason=reason,
            deploy_count=record.deploy_count + 1,
        )
        return deployment


def rollback(registry: Registry, api: RasaApi, *, by: str, reason: str | None = None) -> Deployment:
    """Deploy again the model that served before the current one (no guard: it
    served before, and going back is what an emergency needs)."""
    target = registry.rollback_target()
    if target is None:
        raise DeployError("没有可以回滚到的上一个模型")
    return deploy(registry, api, target[0], by=by, override_reason=reason, rollback=True)


def model_to_serve(settings: Settings) -> tuple[str, Path] | None:
    """The model every Rasa server should run: the one last deployed, else the
    model of the current training inputs (if trained). What the model server
    (GET /model-server/model.tar.gz) hands out; None when there is none."""
    from bot.training.train import training_fingerprint

    registry = Registry.from_settings(settings)
    deployed = registry.deployed()
    if deployed is not None:
        return deployed
    name = f"model-{training_fingerprint()}"
    path = registry.model_path(name)
    return (name, path) if path.exists() else None
