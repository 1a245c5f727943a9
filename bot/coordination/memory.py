"""The in-process engine: one process's dictionary (the `make run` default)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from bot.coordination.base import SharedState

DEFAULT_MAX_KEYS = 50_000


class InProcessState(SharedState):
    """Keys with lifetimes in a bounded dictionary, safe across threads."""

    name = "in-process"

    def __init__(
        self, clock: Callable[[], float] = time.time, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        self.clock = clock
        self.max_keys = max_keys
        # key -> (expires at, value); a window's value is {member: stamp}
        self._items: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._purge_expired()
            return len(self._items)

    def now(self) -> float:
        return self.clock()

    # -- internals (called holding the lock) --------------------------------------------

    def _live(self, key: str) -> object | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self.clock():
            del self._items[key]
            return None
        return item[1]

    def _store(self, key: str, value: object, ttl: float) -> None:
        self._items[key] = (self.clock() + ttl, value)
        self._items.move_to_end(key)
        if len(self._items) > self.max_keys:
            self._purge_expired()
            while len(self._items) > self.max_keys:
                # The least recently written goes: a bound, so a flood cannot fill memory.
                self._items.popitem(last=False)

    def _purge_expired(self) -> None:
        now = self.clock()
        for key in [k for k, (expires, _) in self._items.items() if expires <= now]:
            del self._items[key]

    # -- interface ----------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            return value if isinstance(value, str) else None

    def put(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._store(key, value, ttl)

    def claim(self, key: str, value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._store(key, value, ttl)
            return True

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key) != expected:
                return False
            self._store(key, value, ttl)
            return True

    def delete(self, key: str, expected: str | None = None) -> bool:
        with self._lock:
            current = self._live(key)
            if current is None or (expected is not None and current != expected):
                return False
            del self._items[key]
            return True

    def incr(self, key: str, amount: int, ttl: float) -> int:
        with self._lock:
            current = self._live(key)
            value = (int(current) if isinstance(current, str) else 0) + amount
            self._store(key, str(value), ttl)
            return value

    def window_add(self, key: str, member: str, stamp: float, ttl: float) -> None:
        with self._lock:
            window = self._live(key)
            members = dict(window) if isinstance(window, dict) else {}
            members[member] = stamp
            self._store(key, members, ttl)

    def window_stamps(self, key: str, since: float) -> list[float]:
        with self._lock:
            window = self._live(key)
            if not isinstance(window, dict):
                return []
            for member in [m for m, s in window.items() if s <= since]:
                del window[member]
            return sorted(window.values())

    def window_remove(self, key: str, member: str | None = None) -> None:
        with self._lock:
            window = self._live(key)
            if member is None or not isinstance(window, dict):
                self._items.pop(key, None)
                return
            window.pop(member, None)
