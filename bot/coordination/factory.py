"""Which engine a process uses: Redis when REDIS_URL is set, else in-process."""

from __future__ import annotations

import threading

from bot.coordination.base import SharedState
from bot.coordination.memory import InProcessState

_lock = threading.Lock()
_instances: dict[str, SharedState] = {}


def shared_state_for_url(url: str | None, prefix: str = "na:") -> SharedState:
    """A new engine: RedisState for a redis:// URL, InProcessState for None/''."""
    if not url:
        return InProcessState()
    from bot.coordination.redis_engine import RedisState

    return RedisState(url, prefix=prefix)


def get_shared_state() -> SharedState:
    """This process's engine for the configured REDIS_URL, created once."""
    from bot.settings import get_settings

    url = get_settings().redis_url or ""
    with _lock:
        state = _instances.get(url)
        if state is None:
            state = _instances[url] = shared_state_for_url(url)
        return state
