"""Which engine a process uses: Redis when REDIS_URL is set, else in-process.

`get_deployment_state` is for the few things every process must agree on even
without Redis (the WeChat access token): the database then.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from bot.coordination.base import SharedState
from bot.coordination.memory import InProcessState

if TYPE_CHECKING:
    from bot.settings import Settings

_lock = threading.Lock()
_instances: dict[str, SharedState] = {}


def shared_state_for_url(url: str | None, prefix: str = "na:") -> SharedState:
    """A new engine: RedisState for a redis:// URL, InProcessState for None/''."""
    if not url:
        return InProcessState()
    from bot.coordination.redis_engine import RedisState

    return RedisState(url, prefix=prefix)


def get_shared_state(settings: Settings | None = None) -> SharedState:
    """This process's engine for the configured REDIS_URL, created once."""
    from bot.settings import get_settings

    url = (settings or get_settings()).redis_url or ""
    with _lock:
        state = _instances.get(url)
        if state is None:
            state = _instances[url] = shared_state_for_url(url)
        return state


def get_deployment_state(settings: Settings | None = None) -> SharedState:
    """State all processes of the deployment see, for rare calls: Redis when REDIS_URL
    is set, else the application's database (bot.coordination.database_engine)."""
    from bot.settings import get_settings

    settings = settings or get_settings()
    if settings.redis_url:
        return get_shared_state(settings)
    from bot.coordination.database_engine import DatabaseState
    from bot.store.db import engine_for

    key = f"database:{settings.database_url}"
    with _lock:
        state = _instances.get(key)
        if state is None:
            state = _instances[key] = DatabaseState(engine_for(settings.database_url))
        return state
