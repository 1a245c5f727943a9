"""GET services.json and services/{code}.json: the taxonomy's categories."""

from __future__ import annotations

import re
from typing import Any

from bot.open311.answers import Open311Error
from bot.open311.mapping import public_categories, public_category
from bot.taxonomy import Category, Taxonomy

GROUPS = {"complaint": "投诉", "dispute": "纠纷调解", "service": "便民服务", "proposal": "居民议事"}


def keywords(category: Category) -> str:
    """Comma-separated, as the specification wants: the label, the Chinese terms
    the `covers` text names (低保, 回迁选房 ...) and the group."""
    words = [category.label, *re.findall(r"[\u4e00-\u9fff]+", category.covers)]
    words.append(GROUPS.get(category.kind, category.kind))
    return ", ".join(dict.fromkeys(words))


def service_entry(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.label,
        "description": category.covers,
        "metadata": False,
        "type": "realtime",
        "keywords": keywords(category),
        "group": GROUPS.get(category.kind, category.kind),
    }


def services(taxonomy: Taxonomy | None = None) -> list[dict[str, Any]]:
    """GET services.json."""
    return [service_entry(c) for c in public_categories(taxonomy)]


def service_definition(code: str, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """GET services/{code}.json: no service of ours has attributes."""
    if public_category(code, taxonomy) is None:
        raise Open311Error.of(404, f"service_code {code} was not found")
    return {"service_code": code, "attributes": []}
