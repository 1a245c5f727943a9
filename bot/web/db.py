"""Database access from request handlers.

SQLAlchemy sessions here are synchronous; a unit of work runs in a worker
thread so that a slow query or a locked SQLite file never blocks the event
loop (and with it every other request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from bot.store.db import session_scope
from bot.web.keys import ENGINE

T = TypeVar("T")


async def run_db(app: web.Application, work: Callable[[Session], T], readonly: bool = False) -> T:
    """Run `work(session)` in one transaction (commit on success) in a thread."""
    engine = app[ENGINE]

    def unit() -> T:
        with session_scope(engine, readonly=readonly) as session:
            return work(session)

    return await asyncio.to_thread(unit)
