"""Synthetic conversation logs for the review inbox benchmark.

`build_log` writes Rasa's `events` table (the columns and index of Rasa 3.6's
SQLTrackerStore) into a SQLite file with N resident messages in one bulk
insert: texts are the NLU examples of data/nlu with the variations residents
add (greetings, addresses with building numbers, punctuation, emoji), so the
log has many near-duplicates, and each message carries a parse_data like
Rasa's (intent, intent_ranking, original_text). Every message is followed by
an `action` event, as in a real log.

`add_tickets` opens tickets (bulk, core inserts) for a share of the report
messages, with the message's text as original_text; some are transferred to
another grid or given another category by a worker.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from bot.conversation_log import RASA_EVENTS_DDL
from bot.review.export import nlu_examples
from bot.settings import PROJECT_ROOT
from bot.store.models import Grid, Resident, Ticket, TicketEvent
from bot.taxonomy import get_taxonomy

PREFIXES = ("", "", "", "你好，", "您好 ", "请问", "麻烦问一下，", "网格员你好 ")
SUFFIXES = ("", "", "", "！", "。", "？", "😡", "🙏", "!!", " 谢谢")
PLACES = ("", "", "和平新村{b}号楼", "裕园{b}号楼{u}单元", "{b}号楼{u}单元{r}室 ")


@dataclass(frozen=True)
class LoggedText:
    sender_id: str
    text: str
    intent: str
    timestamp: float


def example_pool() -> list[tuple[str, str]]:
    pool: list[tuple[str, str]] = []
    for path in sorted((PROJECT_ROOT / "data" / "nlu").glob("*.yml")):
        if path.name == "reviewed.yml":
            continue
        pool.extend(nlu_examples(path))
    allowed = set(get_taxonomy().all_intents)
    return [(intent, t) for intent, t in pool if intent in allowed and t]


def _ranking(rng: random.Random, truth: str, intents: Sequence[str]) -> tuple[dict, list[dict]]:
    """A parse_data intent and ranking: usually right, sometimes close, sometimes wrong."""
    top = truth if rng.random() < 0.85 else rng.choice(intents)
    confidence = min(0.999, max(0.05, rng.betavariate(5, 1.6)))
    others = rng.sample([i for i in intents if i != top], 9)
    weights = [rng.random() ** 2 for _ in others]
    total = sum(weights) or 1.0
    rest = [
        {"name": name, "confidence": min((1 - confidence) * w / total, confidence * 0.98)}
        for name, w in zip(others, weights, strict=True)
    ]
    ranking = [{"name": top, "confidence": confidence}] + sorted(
        rest, key=lambda r: r["confidence"], reverse=True
    )
    intent = {"name": top, "confidence": confidence}
    if confidence < 0.4:  # what FallbackClassifier does below config.yml's threshold
        intent = {"name": "nlu_fallback", "confidence": 0.4}
        ranking.insert(0, dict(intent))
    return intent, ranking


def build_log(
    path: Path, messages: int, *, senders: int = 5000, days: int = 90, seed: int = 5
) -> tuple[list[LoggedText], float]:
    """Write the log; returns what was logged and the seconds the insert took."""
    rng = random.Random(seed)
    pool = example_pool()
    intents = sorted({i for i, _ in pool})
    now = time.time()
    start = now - days * 86400
    stamps = sorted(rng.uniform(start, now - 60) for _ in range(messages))
    logged: list[LoggedText] = []
    rows: list[tuple[Any, ...]] = []
    event_id = 0
    for stamp in stamps:
        truth, example = rng.choice(pool)
        place = rng.choice(PLACES).format(
            b=rng.randint(1, 30), u=rng.randint(1, 4), r=rng.randint(101, 602)
        )
        message = f"{rng.choice(PREFIXES)}{place}{example}{rng.choice(SUFFIXES)}"
        sender = f"oBench{rng.randrange(senders):05d}"
        intent, ranking = _ranking(rng, truth, intents)
        data = {
            "event": "user",
            "timestamp": stamp,
            "metadata": {},
            "text": message,
            "parse_data": {
                "intent": intent,
                "entities": [],
                "text": message,
                "message_id": f"m{event_id + 1}",
                "metadata": {},
                "intent_ranking": ranking,
            },
            "input_channel": "wechat",
            "message_id": f"m{event_id + 1}",
        }
        event_id += 1
        rows.append((event_id, sender, "user", stamp, intent["name"], None, json.dumps(data)))
        event_id += 1
        action = {"event": "action", "timestamp": stamp + 0.2, "name": "action_listen"}
        rows.append(
            (event_id, sender, "action", stamp + 0.2, None, "action_listen", json.dumps(action))
        )
        logged.append(LoggedText(sender, message, truth, stamp))
    started = time.perf_counter()
    connection = sqlite3.connect(path)
    try:
        for ddl in RASA_EVENTS_DDL:
            connection.execute(ddl)
        connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        connection.commit()
    finally:
        connection.close()
    return logged, time.perf_counter() - started


def add_tickets(
    engine: Engine, logged: Sequence[LoggedText], share: float = 0.05, seed: int = 9
) -> dict[str, int]:
    """Tickets for `share` of the category messages; 10% transferred, 10% recategorised."""
    rng = random.Random(seed)
    taxonomy = get_taxonomy()
    categories = {c.intent: c for c in taxonomy.categories}
    counts = {"tickets": 0, "transferred": 0, "recategorised": 0, "residents": 0}
    with engine.begin() as connection:
        grids = connection.execute(select(Grid.id, Grid.code, Grid.community_id)).all()
        next_id = (connection.execute(text("SELECT max(id) FROM tickets")).scalar() or 0) + 1
        tickets: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        homes: dict[str, int] = {}
        for item in logged:
            category = categories.get(item.intent)
            if category is None or rng.random() > share:
                continue
            grid_id, code, community_id = rng.choice(grids)
            homes.setdefault(item.sender_id, grid_id)
            created = datetime.fromtimestamp(item.timestamp + 30, tz=timezone.utc)
            ticket = {
                "id": next_id,
                "number": f"B{next_id:08d}",
                "category_code": category.code,
                "kind": category.kind,
                "description": item.text[:200],
                "original_text": item.text,
                "community_id": community_id,
                "grid_id": grid_id,
                "level": "grid",
                "status": "open",
                "due_at": created + timedelta(hours=category.sla_hours),
                "channel": "wechat",
                "sender_id": item.sender_id,
                "message_id": f"t{next_id}",
                "photos": [],
                "version": 1,
                "created_at": created,
                "updated_at": created,
            }
            tickets.append(ticket)
            events.append(_event(next_id, "created", "resident", {}, created))
            roll = rng.random()
            later = created + timedelta(hours=2)
            if roll < 0.1:
                target = rng.choice(grids)
                events.append(
                    _event(
                        next_id,
                        "transferred",
                        "worker:1:王芳",
                        {"from_grid": code, "to_grid": target.code, "from": "open", "to": "open"},
                        later,
                    )
                )
                ticket["grid_id"] = target.id
                counts["transferred"] += 1
            elif roll < 0.2:
                other = rng.choice([c for c in taxonomy.categories if c.code != category.code])
                events.append(
                    _event(
                        next_id,
                        "note",
                        "worker:1:王芳",
                        {"category_from": category.code, "category_to": other.code},
                        later,
                    )
                )
                ticket["category_code"], ticket["kind"] = other.code, other.kind
                counts["recategorised"] += 1
            next_id += 1
        if tickets:
            connection.execute(insert(Ticket.__table__), tickets)
            connection.execute(insert(TicketEvent.__table__), events)
        now = datetime.now(timezone.utc)
        residents = [
            {
                "sender_id": s,
                "channel": "wechat",
                "grid_id": g,
                "created_at": now,
                "updated_at": now,
            }
            for s, g in homes.items()
        ]
        if residents:
            connection.execute(insert(Resident.__table__), residents)
        counts["tickets"] = len(tickets)
        counts["residents"] = len(residents)
    return counts


def _event(ticket_id: int, type_: str, actor: str, data: dict, at: datetime) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "type": type_,
        "actor": actor,
        "note": None,
        "data": data,
        "at": at,
    }
