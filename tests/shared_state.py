"""The `shared_state` fixture: every test using it runs on both engines of
bot.coordination, the in-process one and Redis (TEST_REDIS_URL; skipped,
saying so, when unset)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from bot.coordination import InProcessState, SharedState


def redis_url_or_skip() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL not set: no Redis to test the shared-state engine against")
    return url


def redis_state(prefix: str | None = None) -> SharedState:
    """A RedisState on TEST_REDIS_URL under a prefix of its own (skips when absent)."""
    from bot.coordination.redis_engine import RedisState

    state = RedisState(redis_url_or_skip(), prefix=prefix or f"test:{uuid.uuid4().hex}:")
    try:
        state.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis at TEST_REDIS_URL does not answer: {exc}")
    return state


def clear(state: SharedState) -> None:
    if state.name == "redis":
        client = state.client  # type: ignore[attr-defined]
        keys = list(client.scan_iter(f"{state.prefix}*"))  # type: ignore[attr-defined]
        if keys:
            client.delete(*keys)


@pytest.fixture(params=["in-process", "redis"])
def shared_state(request: pytest.FixtureRequest) -> Iterator[SharedState]:
    state = InProcessState() if request.param == "in-process" else redis_state()
    yield state
    clear(state)
