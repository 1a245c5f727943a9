"""Small helpers shared by tests of several packages."""

from __future__ import annotations

from datetime import datetime, timezone

import yaml
from sqlalchemy.orm import Session

from bot.routing.locator import Located, get_locator
from bot.settings import PROJECT_ROOT
from bot.store.models import Ticket
from bot.taxonomy import Taxonomy, parse_taxonomy
from bot.tickets.service import open_ticket

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


DEMO_FILE = PROJECT_ROOT / "data" / "grids" / "jinan-demo.yml"

# A fixed moment, 10:00 in Jinan, for tests that care about days and SLAs.
NOW = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)


def new_ticket(
    session: Session,
    message_id: str = "m1",
    sender_id: str = "wx-user-1",
    category: str = "HEATING",
    location: Located | None = None,
    now: datetime = NOW,
    **kwargs,
) -> Ticket:
    """Open a ticket with sensible defaults (committed by the caller)."""
    return open_ticket(
        session,
        sender_id=sender_id,
        channel="wechat",
        message_id=message_id,
        category_code=category,
        description=kwargs.pop("description", "暖气不热"),
        original_text=kwargs.pop("original_text", "俺家暖气不热"),
        location=location,
        now=now,
        **kwargs,
    )


def located(session: Session, text: str) -> Located:
    """Locate `text` against the directory in the session's database."""
    return get_locator(session).locate_text(text)
