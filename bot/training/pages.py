"""What the admin's model pages show: the serving model, jobs, history, comparisons.

Plain functions over the registry and Rasa's API (bot.training.registry,
bot.training.deploy), run by the web app in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.training import jobs as training_jobs
from bot.training.deploy import (
    CurrentModel,
    DeployError,
    RasaApi,
    comparable_scores,
    current_model,
)
from bot.training.evaluation import Scores
from bot.training.guard import GuardDecision, check
from bot.training.jobs import Job
from bot.training.registry import ModelRecord, Registry

HISTORY_ROWS = 20
JOB_ROWS = 8


@dataclass
class MetricRow:
    label: str
    current: float | None
    new: float | None
    support: int | None = None

    @property
    def delta(self) -> float | None:
        if self.current is None or self.new is None:
            return None
        return self.new - self.current

    @property
    def trend(self) -> str:
        """CSS class: worse / better / same (by more than rounding)."""
        delta = self.delta
        if delta is None or abs(delta) < 0.0005:
            return "same"
        return "better" if delta > 0 else "worse"


@dataclass
class Comparison:
    current_name: str | None
    new_name: str
    current: Scores | None
    new: Scores | None
    decision: GuardDecision

    @property
    def summary(self) -> list[MetricRow]:
        c, n = self.current, self.new
        return [
            MetricRow("准确率", c.accuracy if c else None, n.accuracy if n else None),
            MetricRow("宏平均F1", c.macro_f1 if c else None, n.macro_f1 if n else None),
            MetricRow(
                "追问率（未识别）", c.fallback_rate if c else None, n.fallback_rate if n else None
            ),
        ]

    @property
    def per_intent(self) -> list[MetricRow]:
        intents = sorted(
            set(self.new.per_intent if self.new else {})
            | set(self.current.per_intent if self.current else {})
        )
        rows = [
            MetricRow(
                intent,
                self.current.per_intent.get(intent) if self.current else None,
                self.new.per_intent.get(intent) if self.new else None,
                (self.new or self.current).support.get(intent),  # type: ignore[union-attr]
            )
            for intent in intents
        ]
        # the biggest drops first: what an admin must look at
        return sorted(rows, key=lambda r: (r.delta if r.delta is not None else 0.0, r.label))


def comparison_of(registry: Registry, name: str, current: CurrentModel | None) -> Comparison:
    current_scores, new_scores = comparable_scores(registry, name, current)
    return Comparison(
        current_name=current.name if current else None,
        new_name=name,
        current=current_scores,
        new=new_scores,
        decision=check(current_scores, new_scores, has_current=current is not None),
    )


def comparison_of_job(job: Job) -> Comparison | None:
    scores = job.scores or {}
    if not scores.get("new") or not job.model:
        return None
    decision = GuardDecision.from_dict(job.guard) or GuardDecision(False, ["没有检查结果"])
    return Comparison(
        current_name=job.current_model,
        new_name=job.model,
        current=Scores.from_dict(scores["current"]) if scores.get("current") else None,
        new=Scores.from_dict(scores["new"]),
        decision=decision,
    )


@dataclass
class OverviewPage:
    current: CurrentModel | None
    current_record: ModelRecord | None
    running: Job | None
    jobs: list[Job]
    models: list[ModelRecord]
    history: list[Any]
    rollback_target: str | None
    rasa_error: str = ""


def overview(registry: Registry, api: RasaApi) -> OverviewPage:
    rasa_error = ""
    try:
        current = current_model(registry, api)
    except DeployError as error:
        current, rasa_error = None, str(error)
    return OverviewPage(
        rasa_error=rasa_error,
        current=current,
        current_record=registry.record_for(current.name, current.path) if current else None,
        running=training_jobs.running_job(registry),
        jobs=training_jobs.list_jobs(registry, JOB_ROWS),
        models=registry.list_models(),
        history=list(reversed(registry.deployments()))[:HISTORY_ROWS],
        rollback_target=(target[0] if (target := registry.rollback_target()) else None),
    )


@dataclass
class ModelPage:
    record: ModelRecord
    current: CurrentModel | None
    comparison: Comparison


def model_page(registry: Registry, api: RasaApi, name: str) -> ModelPage | None:
    """One model with the serving one beside it; None when there is no such model
    (DeployError when Rasa cannot say which model it serves)."""
    if registry.resolve(name) is None:
        return None
    current = current_model(registry, api)
    return ModelPage(registry.record_for(name), current, comparison_of(registry, name, current))
