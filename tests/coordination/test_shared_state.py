"""bot.coordination: the same behaviour from every engine (in-process, Redis, the
database: SQLite, and PostgreSQL when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.coordination import InProcessState, SharedState
from bot.coordination.database_engine import DatabaseState
from bot.store.db import make_engine
from tests.shared_state import clear, redis_state


@pytest.fixture(params=["in-process", "redis", "sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedState]:
    """Each engine: in-process, Redis (TEST_REDIS_URL), and the database engine on
    SQLite and PostgreSQL (TEST_DATABASE_URL)."""
    if request.param in ("in-process", "redis"):
        memory = InProcessState() if request.param == "in-process" else redis_state()
        yield memory
        clear(memory)
        return
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "state.db")
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM shared_values"))
        connection.execute(text("DELETE FROM shared_window_stamps"))
    yield DatabaseState(engine)
    engine.dispose()


def test_claim_is_won_once_and_expires(state: SharedState) -> None:
    assert state.claim("k", "a", ttl=0.3)
    assert not state.claim("k", "b", ttl=0.3)
    assert state.get("k") == "a"
    time.sleep(0.35)
    assert state.get("k") is None
    assert state.claim("k", "b", ttl=5)


def test_replace_and_delete_compare_first(state: SharedState) -> None:
    state.put("k", "one", ttl=5)
    assert not state.replace("k", "other", "two", ttl=5)
    assert state.replace("k", "one", "two", ttl=5)
    assert state.get("k") == "two"
    assert not state.delete("k", expected="one")
    assert state.delete("k", expected="two")
    assert state.get("k") is None
    assert not state.replace("missing", "x", "y", ttl=5)


def test_counter(state: SharedState) -> None:
    assert state.incr("c", 1, ttl=5) == 1
    assert state.incr("c", 2, ttl=5) == 3
    assert state.incr("c", -3, ttl=5) == 0


def test_window_keeps_stamps_after_since(state: SharedState) -> None:
    state.window_add("w", "a", 10.0, ttl=60)
    state.window_add("w", "b", 20.0, ttl=60)
    state.window_add("w", "c", 30.0, ttl=60)
    assert state.window_stamps("w", since=0) == [10.0, 20.0, 30.0]
    assert state.window_stamps("w", since=15) == [20.0, 30.0]
    state.window_remove("w", "c")
    assert state.window_stamps("w", since=0) == [20.0]
    state.window_remove("w")
    assert state.window_stamps("w", since=0) == []


def test_lock_has_one_holder_at_a_time(state: SharedState) -> None:
    token = state.acquire("train", ttl=5)
    assert token and state.holder("train") == token
    assert state.acquire("train", ttl=5) is None
    assert state.renew("train", token, ttl=5)
    assert not state.release("train", "someone-else")
    assert state.release("train", token)
    assert state.acquire("train", ttl=5)


def test_concurrent_claims_have_one_winner(state: SharedState) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def contend(n: int) -> None:
        barrier.wait()
        if state.claim("race", str(n), ttl=5):
            winners.append(n)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_in_process_state_is_bounded() -> None:
    state = InProcessState(max_keys=3)
    for n in range(5):
        state.put(f"k{n}", "v", ttl=60)
    assert len(state) == 3 and state.get("k0") is None and state.get("k4") == "v"
