"""The taxonomy contract (data/taxonomy.yml, a copy of shared/spec/taxonomy.yml).

Intent names and category codes are fixed there; everything that needs to know
which intent opens which kind of ticket, at which level, handled by whom and
with which SLA reads it through this module.

Our copy may add fields to the contract's categories (`handled_by`, and
`public`: whether its tickets may appear in public, see
bot.tickets.publication); the parser reads the fields it knows and ignores
others, so that a field added later does not break an older reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from bot.settings import get_settings

# Who takes a matter on at its level (the `handled_by` field of taxonomy.yml).
GRID_WORKER = "grid_worker"
COMMUNITY_OFFICE = "community_office"
MEDIATION_COMMITTEE = "mediation_committee"
RESIDENTS_COUNCIL = "residents_council"
HANDLERS_BY_LEVEL = {
    "grid": (GRID_WORKER,),
    "community": (COMMUNITY_OFFICE, MEDIATION_COMMITTEE, RESIDENTS_COUNCIL),
}
# When a copy of the contract carries no handled_by: the plain body of the level.
DEFAULT_HANDLER = {"grid": GRID_WORKER, "community": COMMUNITY_OFFICE}


class TaxonomyError(ValueError):
    """taxonomy.yml says something this module cannot work with."""


@dataclass(frozen=True)
class Category:
    intent: str
    code: str
    label: str
    kind: str  # complaint | dispute | service | proposal
    level: str  # grid | community
    sla_hours: int
    covers: str
    handled_by: str = ""  # see HANDLERS_BY_LEVEL; "" = the level's default
    # May its tickets appear in public (coarsely)? Absent means no: a
    # household's own affairs must never be published by omission.
    public: bool = False

    def __post_init__(self) -> None:
        if not self.handled_by and self.level in DEFAULT_HANDLER:
            object.__setattr__(self, "handled_by", DEFAULT_HANDLER[self.level])


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
    handled_by=GRID_WORKER,
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


def _category(raw: dict) -> Category:
    category = Category(
        intent=raw["intent"],
        code=raw["code"],
        label=raw["label"],
        kind=raw["kind"],
        level=raw["level"],
        sla_hours=int(raw["sla_hours"]),
        covers=raw.get("covers", ""),
        handled_by=raw.get("handled_by") or "",
        public=_public(raw),
    )
    allowed = HANDLERS_BY_LEVEL.get(category.level, ())
    if category.handled_by not in allowed:
        raise TaxonomyError(
            f"{category.code}: handled_by {category.handled_by!r} is not one of "
            f"{', '.join(allowed)} (level {category.level!r})"
        )
    return category


def _public(raw: dict) -> bool:
    value = raw.get("public", False)
    # yes/no strings are a YAML 1.1 habit that safe_load already turns into
    # booleans; anything else ("private", 1) is a mistake to refuse, not guess.
    if not isinstance(value, bool):
        raise TaxonomyError(f"{raw.get('code')}: public must be true or false, not {value!r}")
    return value


def parse_taxonomy(text: str) -> Taxonomy:
    raw = yaml.safe_load(text)
    categories = tuple(_category(c) for c in raw["categories"])
    dialogue = tuple(d["intent"] for d in raw["dialogue"])
    return Taxonomy(categories=categories, dialogue_intents=dialogue)


def load_taxonomy(path: Path) -> Taxonomy:
    return parse_taxonomy(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def get_taxonomy() -> Taxonomy:
    """The taxonomy of this process, read once from the configured path."""
    return load_taxonomy(get_settings().taxonomy_path)
