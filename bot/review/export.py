"""Reviewed examples -> data/nlu/reviewed.yml (Rasa 3 YAML), deduplicated.

Every confirm/relabel decision gives its group's example to its intent,
out_of_scope to the intent out_of_scope; dismissed groups give nothing. An
example is left out when it is (a near-duplicate of) an example the data
already has, in any intent, or a held-out evaluation message
(tests/data/holdout_*.yml and the hard development set tests/data/hard_*.yml:
scores stay honest only while those stay unseen),
or cannot be written as one (too long, Rasa's entity syntax).

The file is regenerated from all decisions each time, in a fixed order, and
only rewritten when its content changes: exporting twice changes nothing, and
an undone decision drops out on the next export. Personal data in the
examples becomes placeholders (bot.privacy.masking): the file is committed.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.privacy.masking import mask
from bot.review.text import bigrams, clean_example, example_problem, near_duplicate, shape
from bot.settings import PROJECT_ROOT
from bot.store.db import session_scope
from bot.store.models import ReviewDecision
from bot.taxonomy import Taxonomy, get_taxonomy

__all__ = [
    "ExportResult",
    "REVIEWED_FILE",
    "export_reviewed",
    "nlu_examples",
    "render_nlu_yaml",
]

REVIEWED_FILE = "reviewed.yml"
SKIP_REASONS = {
    "duplicate": "训练数据中已有相同或相近的例句",
    "held_out": "与留出评测集的消息相同或相近",
    "too_long": "太长",
    "annotation_syntax": "含有 Rasa 实体标注语法",
    "empty": "为空",
    "intent_trigger": "是意图指令",
    "unknown_intent": "意图不在 taxonomy.yml 中",
}
HEADER = """\
# Resident messages reviewed in the review inbox (/admin/review), written by
# `python -m bot nlu export` (bot/review/export.py). Regenerated from the
# review decisions on every export: change a decision, not this file.
"""

# `[text](entity)`, `[text]{...}`, `[text][...]`: the entity text is what a resident wrote.
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\}|\[[^\]]*\])")


@dataclass(frozen=True)
class ExportResult:
    added: int  # examples that were not in the file before
    skipped: int  # decided examples left out (see skipped_by_reason)
    path: Path
    total: int = 0  # examples in the file now
    removed: int = 0  # examples of the previous file no longer there
    changed: bool = False  # whether the file was (re)written
    by_intent: dict[str, int] = field(default_factory=dict)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)


def _plain(example: str) -> str:
    return _ANNOTATION.sub(r"\1", example)


def _block_examples(block: dict[str, Any]) -> list[str]:
    examples = block.get("examples")
    if isinstance(examples, str):
        return [
            line.strip()[2:].strip()
            for line in examples.splitlines()
            if line.strip().startswith("- ")
        ]
    if isinstance(examples, list):  # [{text: ..., metadata: ...}] or plain strings
        return [str(e.get("text", "")) if isinstance(e, dict) else str(e) for e in examples if e]
    return []


# libyaml's safe loader when PyYAML has it (several times faster on data/nlu).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_SAFE_LOADER)


def nlu_examples(path: Path) -> list[tuple[str, str]]:
    """(intent, text) of a Rasa NLU YAML file, entity annotations removed."""
    data = _load_yaml(path) or {}
    out = []
    for block in data.get("nlu") or []:
        if isinstance(block, dict) and block.get("intent"):
            out.extend((str(block["intent"]), _plain(t)) for t in _block_examples(block))
    return out


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    if isinstance(node, dict):
        return [s for key, value in node.items() if key != "version" for s in _strings(value)]
    return []


def _holdout_texts(path: Path) -> list[str]:
    """Messages of a held-out file: Rasa NLU YAML, or {holdout: {intent: [texts]}}."""
    data = _load_yaml(path) or {}
    if isinstance(data, dict) and "nlu" in data:
        return [text for _intent, text in nlu_examples(path)]
    return _strings(data)


HoldoutGlobs = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


def _holdout_paths(holdout_glob: HoldoutGlobs) -> list[Path]:
    if not holdout_glob:
        return []
    patterns = [holdout_glob] if isinstance(holdout_glob, str | os.PathLike) else holdout_glob
    paths: list[Path] = []
    for entry in patterns:
        pattern = Path(entry)
        if not pattern.is_absolute():
            pattern = PROJECT_ROOT / pattern
        paths.extend(Path(p) for p in sorted(glob.glob(str(pattern))))
    return paths


def render_nlu_yaml(examples: dict[str, list[str]]) -> str:
    """Rasa 3 NLU YAML (version "3.1") with one block per intent, in this order."""
    lines = [HEADER.rstrip("\n"), 'version: "3.1"']
    if not any(examples.values()):
        lines.append("nlu: []")
        return "\n".join(lines) + "\n"
    lines.append("nlu:")
    for intent, texts in examples.items():
        if not texts:
            continue
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {text}" for text in texts)
    return "\n".join(lines) + "\n"


class _Seen:
    """Shapes already in the data (per intent, for the near-duplicate test)."""

    def __init__(self) -> None:
        self.shapes: set[str] = set()
        self.by_intent: dict[str, list[tuple[str, frozenset[str]]]] = {}

    def add(self, intent: str, text: str) -> None:
        s = shape(text) or text
        self.shapes.add(s)
        self.by_intent.setdefault(intent, []).append((s, bigrams(s)))

    def clashes(self, intent: str | None, text: str) -> bool:
        s = shape(text) or text
        if s in self.shapes:
            return True
        b = bigrams(s)
        pools = self.by_intent.values() if intent is None else [self.by_intent.get(intent, [])]
        return any(near_duplicate(s, b, other, ob) for pool in pools for other, ob in pool)


def export_reviewed(
    engine: Engine,
    nlu_dir: str | os.PathLike[str],
    holdout_glob: HoldoutGlobs = None,
    *,
    out: str | os.PathLike[str] | None = None,
    taxonomy: Taxonomy | None = None,
) -> ExportResult:
    """Write the reviewed examples to `out` (default `nlu_dir`/reviewed.yml).

    Deduplicated against every other *.yml of `nlu_dir` and the files matching
    `holdout_glob`, one pattern or several (relative patterns are relative to
    the project root).
    """
    taxonomy = taxonomy or get_taxonomy()
    nlu_dir = Path(nlu_dir)
    path = Path(out) if out is not None else nlu_dir / REVIEWED_FILE
    with session_scope(engine, readonly=True) as session:
        decisions = session.execute(
            select(ReviewDecision.intent, ReviewDecision.text)
            .where(ReviewDecision.action != "dismiss", ReviewDecision.intent.isnot(None))
            .order_by(ReviewDecision.decided_at, ReviewDecision.id)
        ).all()

    existing = _Seen()
    for data_file in sorted(nlu_dir.glob("*.yml")):
        if data_file.resolve() != path.resolve():
            for intent, text in nlu_examples(data_file):
                existing.add(intent, text)
    held_out = _Seen()
    for holdout in _holdout_paths(holdout_glob):
        for text in _holdout_texts(holdout):
            held_out.add("", text)

    allowed = set(taxonomy.all_intents)
    chosen: dict[str, list[str]] = {}
    skipped: Tally[str] = Tally()
    for intent, raw in decisions:
        # reviewed.yml goes into version control: no resident's phone, ID, card or room
        text = mask(clean_example(raw or ""))
        problem = example_problem(text)
        if intent not in allowed:
            problem = "unknown_intent"
        if problem is None and held_out.clashes(None, text):
            problem = "held_out"
        if problem is None and existing.clashes(intent, text):
            problem = "duplicate"
        if problem is not None:
            skipped[problem] += 1
            continue
        chosen.setdefault(intent, []).append(text)
        existing.add(intent, text)  # later decisions are deduplicated against it too

    ordered = {intent: chosen[intent] for intent in sorted(chosen)}
    content = render_nlu_yaml(ordered)
    previous_text = path.read_text(encoding="utf-8") if path.exists() else None
    previous = set(nlu_examples(path)) if previous_text is not None else set()
    now = {(intent, text) for intent, texts in ordered.items() for text in texts}
    changed = previous_text != content
    if changed:
        _write_atomically(path, content)
    return ExportResult(
        added=len(now - previous),
        skipped=sum(skipped.values()),
        path=path,
        total=len(now),
        removed=len(previous - now),
        changed=changed,
        by_intent={intent: len(texts) for intent, texts in ordered.items()},
        skipped_by_reason=dict(skipped),
    )


def _write_atomically(path: Path, content: str) -> None:
    """Readers (a training starting now) see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(content)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def ready_to_export(session: Session) -> int:
    """Decisions that become training examples on the next export."""
    return session.execute(
        select(func.count())
        .select_from(ReviewDecision)
        .where(ReviewDecision.action != "dismiss", ReviewDecision.intent.isnot(None))
    ).scalar_one()
