"""Small helpers shared by tests of several packages."""

from __future__ import annotations

import yaml

from bot.settings import PROJECT_ROOT
from bot.taxonomy import Taxonomy, parse_taxonomy

TAXONOMY_FILE = PROJECT_ROOT / "data" / "taxonomy.yml"


def taxonomy_text_with(code: str, **changes: object) -> str:
    """data/taxonomy.yml with fields of one category changed (None: field removed)."""
    raw = yaml.safe_load(TAXONOMY_FILE.read_text(encoding="utf-8"))
    for category in raw["categories"]:
        if category["code"] == code:
            category.update(changes)
    raw["categories"] = [{k: v for k, v in c.items() if v is not None} for c in raw["categories"]]
    return yaml.safe_dump(raw, allow_unicode=True)


def taxonomy_with(code: str, **changes: object) -> Taxonomy:
    return parse_taxonomy(taxonomy_text_with(code, **changes))
