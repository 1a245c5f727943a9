"""Score models on the held-out messages, the same set for every model.

The held-out set is tests/data/holdout_*.yml (`holdout: {intent: [text, ...]}`):
messages written apart from data/nlu and never trained on (the export of
reviewed examples leaves them out). Its hash is stored with every score, so
scores are only compared when they were measured on the same messages.

`score()` is plain Python (scikit-learn for F1); `evaluate_models()` loads
models with Rasa and runs in `python -m bot nlu evaluate`, a subprocess, so
TensorFlow is never imported by the web app.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.settings import PROJECT_ROOT

FALLBACK_INTENT = "nlu_fallback"
# The hard development set (`make bench-nlu`): never trained on, like the held-out set.
HARD_SET_GLOB = "tests/data/hard_*.yml"
TOP_CONFUSED_PAIRS = 10


class EvaluationError(Exception):
    """The held-out set or a model could not be evaluated."""


@dataclass(frozen=True)
class Holdout:
    examples: tuple[tuple[str, str], ...]  # (text, intent)
    files: tuple[str, ...]
    hash: str

    @property
    def texts(self) -> list[str]:
        return [text for text, _ in self.examples]

    @property
    def intents(self) -> list[str]:
        return [intent for _, intent in self.examples]


def _resolve_glob(pattern: str, root: Path) -> list[Path]:
    full = pattern if os.path.isabs(pattern) else str(root / pattern)
    return sorted(Path(p) for p in glob.glob(full))


def load_holdout(pattern: str, root: Path = PROJECT_ROOT) -> Holdout:
    """The held-out examples of every file matching `pattern` (relative to root)."""
    files = _resolve_glob(pattern, root)
    if not files:
        raise EvaluationError(f"没有找到评估集文件：{pattern}")
    examples: set[tuple[str, str]] = set()
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        holdout = data.get("holdout") if isinstance(data, dict) else None
        if not isinstance(holdout, dict):
            raise EvaluationError(f"{path}: 缺少 holdout: {{意图: [消息, ...]}}")
        for intent, texts in holdout.items():
            for text in texts or []:
                if isinstance(text, str) and text.strip():
                    examples.add((text.strip(), str(intent)))
    ordered = tuple(sorted(examples, key=lambda e: (e[1], e[0])))
    digest = hashlib.sha256()
    for text, intent in ordered:
        digest.update(f"{intent}\t{text}\n".encode())
    return Holdout(ordered, tuple(str(f) for f in files), digest.hexdigest()[:16])


@dataclass
class ConfusedPair:
    """Two intents mistaken for each other: a->b and b->a counted together."""

    a: str
    b: str
    a_as_b: int
    b_as_a: int

    @property
    def total(self) -> int:
        return self.a_as_b + self.b_as_a


@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    per_intent: dict[str, float]
    support: dict[str, int]
    confused_pairs: list[ConfusedPair] = field(default_factory=list)
    fallback_rate: float = 0.0
    examples: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["confused_pairs"] = [
            {**asdict(pair), "total": pair.total} for pair in self.confused_pairs
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scores:
        pairs = [
            ConfusedPair(p["a"], p["b"], int(p["a_as_b"]), int(p["b_as_a"]))
            for p in data.get("confused_pairs") or []
        ]
        return cls(
            accuracy=float(data["accuracy"]),
            macro_f1=float(data["macro_f1"]),
            per_intent={k: float(v) for k, v in (data.get("per_intent") or {}).items()},
            support={k: int(v) for k, v in (data.get("support") or {}).items()},
            confused_pairs=pairs,
            fallback_rate=float(data.get("fallback_rate") or 0.0),
            examples=int(data.get("examples") or 0),
        )


def confused_pairs(
    gold: Sequence[str], predicted: Sequence[str], top: int = TOP_CONFUSED_PAIRS
) -> list[ConfusedPair]:
    """The intent pairs mistaken for each other most often (the fallback is no
    intent: asking again is not a confusion)."""
    directed = Counter(
        (g, p) for g, p in zip(gold, predicted, strict=True) if g != p and p != FALLBACK_INTENT
    )
    pairs: dict[tuple[str, str], ConfusedPair] = {}
    for (g, p), n in directed.items():
        a, b = sorted((g, p))
        pair = pairs.setdefault((a, b), ConfusedPair(a, b, 0, 0))
        if g == a:
            pair.a_as_b += n
        else:
            pair.b_as_a += n
    ranked = sorted(pairs.values(), key=lambda pair: (-pair.total, pair.a, pair.b))
    return ranked[:top]


def score(gold: Sequence[str], predicted: Sequence[str]) -> Scores:
    """Accuracy and F1 over the held-out intents; any other prediction (the
    fallback, an intent not in the set) counts as wrong."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if not gold:
        raise EvaluationError("评估集为空")
    labels = sorted(set(gold))
    _, _, f1, support = precision_recall_fscore_support(
        list(gold), list(predicted), labels=labels, zero_division=0
    )
    return Scores(
        accuracy=float(accuracy_score(list(gold), list(predicted))),
        macro_f1=float(f1.mean()),
        per_intent={label: float(v) for label, v in zip(labels, f1, strict=True)},
        support={label: int(n) for label, n in zip(labels, support, strict=True)},
        confused_pairs=confused_pairs(gold, predicted),
        fallback_rate=sum(p == FALLBACK_INTENT for p in predicted) / len(predicted),
        examples=len(gold),
    )


# -- with Rasa (in the evaluation subprocess) ----------------------------------


def _quiet_rasa() -> None:
    import logging

    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)


def predict(model: Path, texts: Sequence[str]) -> list[str]:
    """The intent the model gives each text, as the Rasa server would."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))

    async def parse_all() -> list[str]:
        return [str((await agent.parse_message(t))["intent"]["name"]) for t in texts]

    return asyncio.run(parse_all())


def evaluate_models(models: Sequence[Path], holdout: Holdout) -> dict[str, dict[str, Any]]:
    """Scores of each model on the held-out set: {model path: Scores.to_dict()}."""
    _quiet_rasa()
    results: dict[str, dict[str, Any]] = {}
    for model in models:
        predictions = predict(model, holdout.texts)
        results[str(model)] = score(holdout.intents, predictions).to_dict()
    return results


def evaluate_in_subprocess(
    models: Sequence[Path],
    holdout_glob: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
    command: Sequence[str] | None = None,
) -> tuple[str, dict[str, Scores]]:
    """Run `python -m bot nlu evaluate` on the models: (holdout hash, {path: Scores}).

    `command` replaces the command's start (tests use a fake evaluator); the model
    paths, `--holdout` and `--json-out FILE` are appended.
    """
    with tempfile.TemporaryDirectory(prefix="nb-eval-") as tmp:
        out = Path(tmp) / "scores.json"
        argv = [
            *(command or [sys.executable, "-m", "bot", "nlu", "evaluate"]),
            *[str(m) for m in models],
            "--holdout",
            holdout_glob,
            "--json-out",
            str(out),
        ]
        completed = subprocess.run(
            argv,
            cwd=PROJECT_ROOT,
            # Rasa's loggers read LOG_LEVEL: only warnings from the evaluator
            env={**(env if env is not None else os.environ), "LOG_LEVEL": "WARNING"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0 or not out.exists():
            tail = completed.stdout.decode("utf-8", "replace")[-3000:]
            raise EvaluationError(f"评估失败（退出码 {completed.returncode}）：\n{tail}")
        data = json.loads(out.read_text(encoding="utf-8"))
    scores = {path: Scores.from_dict(s) for path, s in data["models"].items()}
    return str(data["holdout_hash"]), scores
