"""Where the assistant needs teaching: thin intents and confused intent pairs.

- Examples per intent of the taxonomy in data/nlu (reviewed.yml included),
  with the reviewed examples not exported yet and the inbox messages the
  assistant gave that intent; intents under MIN_EXAMPLES come first.
- Confused pairs (the assistant's intent -> another one), counted in messages
  from three sources: decisions that relabelled a group, tickets whose
  category a worker changed (not reviewed yet), and messages where the other
  intent came a close second (margin under AMBIGUOUS_MARGIN, not reviewed yet).

Each figure links to the inbox filtered to the messages concerned.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.review.export import nlu_examples, ready_to_export
from bot.store.models import ReviewDecision, ReviewMessage
from bot.taxonomy import Taxonomy, get_taxonomy

__all__ = [
    "AMBIGUOUS_MARGIN",
    "ConfusedPair",
    "IntentCount",
    "Insights",
    "MIN_EXAMPLES",
    "load_insights",
]

MIN_EXAMPLES = 50
AMBIGUOUS_MARGIN = 0.1
MAX_PAIRS = 20


@dataclass(frozen=True)
class IntentCount:
    intent: str
    label: str  # category label, or "" for conversation intents
    examples: int  # in the NLU data
    reviewed: int  # confirmed or relabelled to this intent in the inbox
    inbox: int  # unreviewed messages the assistant gave this intent
    too_few: bool


@dataclass(frozen=True)
class ConfusedPair:
    predicted: str
    actual: str
    relabelled: int  # reviewed messages: the assistant said `predicted`, the reviewer `actual`
    worker_changed: int  # unreviewed: a worker changed the ticket's category to `actual`
    ambiguous: int  # unreviewed: `actual` a close second

    @property
    def total(self) -> int:
        return self.relabelled + self.worker_changed + self.ambiguous


@dataclass(frozen=True)
class Insights:
    intents: list[IntentCount]
    pairs: list[ConfusedPair]
    min_examples: int
    ambiguous_margin: float
    examples_total: int
    ready_to_export: int = 0  # decisions the next export turns into examples


def count_examples(nlu_dir: str | os.PathLike[str]) -> Tally[str]:
    counts: Tally[str] = Tally()
    for path in sorted(Path(nlu_dir).glob("*.yml")):
        counts.update(intent for intent, _text in nlu_examples(path))
    return counts


def load_insights(
    session: Session,
    nlu_dir: str | os.PathLike[str],
    taxonomy: Taxonomy | None = None,
    min_examples: int = MIN_EXAMPLES,
    ambiguous_margin: float = AMBIGUOUS_MARGIN,
    max_pairs: int = MAX_PAIRS,
) -> Insights:
    taxonomy = taxonomy or get_taxonomy()
    m, d = ReviewMessage, ReviewDecision
    examples = count_examples(nlu_dir)
    reviewed = dict(
        session.execute(
            select(d.intent, func.count())
            .where(d.action.in_(("confirm", "relabel", "out_of_scope")), d.intent.isnot(None))
            .group_by(d.intent)
        ).all()
    )
    inbox = dict(
        session.execute(
            select(m.top_intent, func.count())
            .where(m.decision_id.is_(None), m.top_intent.isnot(None))
            .group_by(m.top_intent)
        ).all()
    )
    intents = []
    for intent in taxonomy.all_intents:
        category = taxonomy.by_intent(intent)
        intents.append(
            IntentCount(
                intent=intent,
                label=category.label if category and intent in taxonomy.category_intents else "",
                examples=examples.get(intent, 0),
                reviewed=int(reviewed.get(intent, 0)),
                inbox=int(inbox.get(intent, 0)),
                too_few=examples.get(intent, 0) < min_examples,
            )
        )
    intents.sort(key=lambda i: (not i.too_few, i.examples, i.intent))

    pairs: dict[tuple[str, str], dict[str, int]] = {}

    def add(kind: str, rows: list) -> None:
        for predicted, actual, count in rows:
            if predicted and actual and predicted != actual:
                pairs.setdefault((predicted, actual), Tally())[kind] += int(count)

    add(
        "relabelled",
        session.execute(
            select(d.predicted_intent, d.intent, func.sum(d.messages))
            .where(d.action.in_(("confirm", "relabel", "out_of_scope")))
            .group_by(d.predicted_intent, d.intent)
        ).all(),
    )
    add(
        "worker_changed",
        session.execute(
            select(m.top_intent, m.suggested_intent, func.count())
            .where(m.decision_id.is_(None), m.suggested_intent.isnot(None))
            .group_by(m.top_intent, m.suggested_intent)
        ).all(),
    )
    add(
        "ambiguous",
        session.execute(
            select(m.top_intent, m.second_intent, func.count())
            .where(
                m.decision_id.is_(None),
                m.second_intent.isnot(None),
                m.margin < ambiguous_margin,
            )
            .group_by(m.top_intent, m.second_intent)
        ).all(),
    )
    confused = [
        ConfusedPair(
            predicted=predicted,
            actual=actual,
            relabelled=counts.get("relabelled", 0),
            worker_changed=counts.get("worker_changed", 0),
            ambiguous=counts.get("ambiguous", 0),
        )
        for (predicted, actual), counts in pairs.items()
    ]
    confused.sort(key=lambda p: (-p.relabelled - p.worker_changed, -p.total, p.predicted, p.actual))
    return Insights(
        intents=intents,
        pairs=confused[:max_pairs],
        min_examples=min_examples,
        ambiguous_margin=ambiguous_margin,
        examples_total=sum(examples.values()),
        ready_to_export=ready_to_export(session),
    )
