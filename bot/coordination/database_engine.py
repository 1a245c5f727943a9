"""The database engine: shared state in the application's own database.

For processes that share a database but no Redis: `make run`'s Rasa server,
action server and web app must use one WeChat access token (WeChat invalidates
the previous token shortly after a new one is fetched), and that is this
engine's use. It is not for the hot path (every message's MsgId claim): a
round trip to the database, and a write on SQLite, per call.

Every operation is one short transaction of conditional statements, so it is
atomic on PostgreSQL and on SQLite (whose transactions start IMMEDIATE here,
bot.store.db). Times are this machine's clock (`time.time`); with processes on
several machines, use Redis. Database errors become `SharedStateUnavailable`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.coordination.base import SharedState, SharedStateUnavailable
from bot.store.models import SharedValue, SharedWindowStamp

T = TypeVar("T")

VALUES = SharedValue.__table__
STAMPS = SharedWindowStamp.__table__

# One call in this many also deletes what has expired (keys nobody reads again).
PURGE_ONE_IN = 200


def _unavailable(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except SQLAlchemyError as exc:
            raise SharedStateUnavailable(f"database: {type(exc).__name__}: {exc}") from exc

    return wrapper


class DatabaseState(SharedState):
    """Keys with lifetimes in the tables `shared_values` and `shared_window_stamps`."""

    name = "database"

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def now(self) -> float:
        return self.clock()

    # -- internals -------------------------------------------------------------------

    def _live(self, connection: Connection, key: str) -> str | None:
        return connection.execute(
            select(VALUES.c.value).where(VALUES.c.key == key, VALUES.c.expires_at > self.now())
        ).scalar_one_or_none()

    def _insert(self, key: str, value: str, ttl: float) -> bool:
        """Create `key` (an expired row of it is taken over); False when it is live."""
        now = self.now()
        with self.engine.begin() as connection:
            taken_over = connection.execute(
                update(VALUES)
                .where(VALUES.c.key == key, VALUES.c.expires_at <= now)
                .values(value=value, expires_at=now + ttl)
            ).rowcount
            if taken_over:
                return True
            if self._live(connection, key) is not None:
                return False
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(VALUES).values(key=key, value=value, expires_at=now + ttl)
                )
        except IntegrityError:  # another process created it in between
            return False
        self._maybe_purge()
        return True

    def _maybe_purge(self) -> None:
        if random.randrange(PURGE_ONE_IN):
            return
        now = self.now()
        with self.engine.begin() as connection:
            connection.execute(delete(VALUES).where(VALUES.c.expires_at <= now))
            connection.execute(delete(STAMPS).where(STAMPS.c.expires_at <= now))

    # -- interface -------------------------------------------------------------------

    @_unavailable
    def get(self, key: str) -> str | None:
        with self.engine.connect() as connection:
            return self._live(connection, key)

    @_unavailable
    def put(self, key: str, value: str, ttl: float) -> None:
        while True:
            with self.engine.begin() as connection:
                changed = connection.execute(
                    update(VALUES)
                    .where(VALUES.c.key == key)
                    .values(value=value, expires_at=self.now() + ttl)
                ).rowcount
            if changed or self._insert(key, value, ttl):
                return

    @_unavailable
    def claim(self, key: str, value: str, ttl: float) -> bool:
        return self._insert(key, value, ttl)

    @_unavailable
    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        now = self.now()
        with self.engine.begin() as connection:
            return bool(
                connection.execute(
                    update(VALUES)
                    .where(
                        VALUES.c.key == key,
                        VALUES.c.value == expected,
                        VALUES.c.expires_at > now,
                    )
                    .values(value=value, expires_at=now + ttl)
                ).rowcount
            )

    @_unavailable
    def delete(self, key: str, expected: str | None = None) -> bool:
        condition = [VALUES.c.key == key, VALUES.c.expires_at > self.now()]
        if expected is not None:
            condition.append(VALUES.c.value == expected)
        with self.engine.begin() as connection:
            return bool(connection.execute(delete(VALUES).where(*condition)).rowcount)

    @_unavailable
    def incr(self, key: str, amount: int, ttl: float) -> int:
        while True:  # compare and set: a concurrent increment makes this one go again
            with self.engine.connect() as connection:
                current = self._live(connection, key)
            if current is None:
                if self._insert(key, str(amount), ttl):
                    return amount
                continue
            value = int(current) + amount
            if self.replace(key, current, str(value), ttl):
                return value

    @_unavailable
    def window_add(self, key: str, member: str, stamp: float, ttl: float) -> None:
        expires_at = self.now() + ttl
        while True:
            try:
                with self.engine.begin() as connection:
                    # The whole window lives `ttl` from its latest member, as in the
                    # other engines.
                    connection.execute(
                        update(STAMPS).where(STAMPS.c.key == key).values(expires_at=expires_at)
                    )
                    changed = connection.execute(
                        update(STAMPS)
                        .where(STAMPS.c.key == key, STAMPS.c.member == member)
                        .values(stamp=stamp)
                    ).rowcount
                    if not changed:
                        connection.execute(
                            insert(STAMPS).values(
                                key=key, member=member, stamp=stamp, expires_at=expires_at
                            )
                        )
                return
            except IntegrityError:  # the same member added at the same moment: update it
                continue

    @_unavailable
    def window_stamps(self, key: str, since: float) -> list[float]:
        with self.engine.begin() as connection:
            connection.execute(delete(STAMPS).where(STAMPS.c.key == key, STAMPS.c.stamp <= since))
            return list(
                connection.execute(
                    select(STAMPS.c.stamp)
                    .where(STAMPS.c.key == key, STAMPS.c.expires_at > self.now())
                    .order_by(STAMPS.c.stamp)
                ).scalars()
            )

    @_unavailable
    def window_remove(self, key: str, member: str | None = None) -> None:
        condition = [STAMPS.c.key == key]
        if member is not None:
            condition.append(STAMPS.c.member == member)
        with self.engine.begin() as connection:
            connection.execute(delete(STAMPS).where(*condition))
