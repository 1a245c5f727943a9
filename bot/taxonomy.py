"""The taxonomy contract (data/taxonomy.yml, a copy of shared/spec/taxonomy.yml).

Intent names and category codes are fixed there; everything that needs to know
which intent opens which kind of ticket, at which level and with which SLA reads
it through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from bot.settings import get_settings


@dataclass(frozen=True)
class Category:
    intent: str
    code: str
    label: str
    kind: str  # complaint | dispute | service | proposal
    level: str  # grid | community
    sla_hours: int
    covers: str


# Matters of our own that are not categories of the contract (and so not
# Open311 services): "find me a person" opens a call-back ticket for the
# resident's grid worker, the all-round community worker.
HANDOFF = Category(
    intent="request_human",
    code="HANDOFF",
    label="人工联系",
    kind="handoff",
    level="grid",
    sla_hours=24,
    covers="a resident asks a community worker to call back",
)


@dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]
    dialogue_intents: tuple[str, ...]
    internal: tuple[Category, ...] = (HANDOFF,)

    @property
    def category_intents(self) -> tuple[str, ...]:
        return tuple(c.intent for c in self.categories)

    @property
    def all_intents(self) -> tuple[str, ...]:
        return self.category_intents + self.dialogue_intents

    def by_intent(self, intent: str) -> Category | None:
        """The category a message of this intent opens (internal ones included)."""
        return next((c for c in self.categories + self.internal if c.intent == intent), None)

    def by_code(self, code: str) -> Category | None:
        return next((c for c in self.categories + self.internal if c.code == code), None)


def parse_taxonomy(text: str) -> Taxonomy:
    raw = yaml.safe_load(text)
    categories = tuple(
        Category(
            intent=c["intent"],
            code=c["code"],
            label=c["label"],
            kind=c["kind"],
            level=c["level"],
            sla_hours=int(c["sla_hours"]),
            covers=c.get("covers", ""),
        )
        for c in raw["categories"]
    )
    dialogue = tuple(d["intent"] for d in raw["dialogue"])
    return Taxonomy(categories=categories, dialogue_intents=dialogue)


def load_taxonomy(path: Path) -> Taxonomy:
    return parse_taxonomy(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def get_taxonomy() -> Taxonomy:
    """The taxonomy of this process, read once from the configured path."""
    return load_taxonomy(get_settings().taxonomy_path)
