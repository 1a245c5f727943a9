"""The interface of shared state: keys with lifetimes, claims, counters, windows.

Every call is short and synchronous (a dictionary, or one round trip to Redis on
the local network): callers in an event loop may use it directly, and a claim
followed by local bookkeeping has no await in between.
"""

from __future__ import annotations

import abc
import secrets


class SharedStateUnavailable(Exception):
    """The shared store (Redis) did not answer; callers degrade, never crash."""


class SharedState(abc.ABC):
    """Keys holding strings, each with a lifetime in seconds."""

    name: str = "shared"

    @abc.abstractmethod
    def now(self) -> float:
        """Seconds on a clock all users of this store agree on."""

    @abc.abstractmethod
    def get(self, key: str) -> str | None:
        """The value of `key`, None when missing or expired."""

    @abc.abstractmethod
    def put(self, key: str, value: str, ttl: float) -> None:
        """Set `key` to `value` for `ttl` seconds."""

    @abc.abstractmethod
    def claim(self, key: str, value: str, ttl: float) -> bool:
        """Set `key` only if it does not exist; True for the one caller that did."""

    @abc.abstractmethod
    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Set `key` to `value` only while it holds `expected` (compare and set)."""

    @abc.abstractmethod
    def delete(self, key: str, expected: str | None = None) -> bool:
        """Remove `key` (only while it holds `expected`, when given)."""

    @abc.abstractmethod
    def incr(self, key: str, amount: int, ttl: float) -> int:
        """Add `amount` to the counter `key` (created at 0) and renew its lifetime."""

    @abc.abstractmethod
    def window_add(self, key: str, member: str, stamp: float, ttl: float) -> None:
        """Record `member` at time `stamp` in the window `key` (kept `ttl` seconds)."""

    @abc.abstractmethod
    def window_stamps(self, key: str, since: float) -> list[float]:
        """The stamps of the window after `since`, oldest first (older ones dropped)."""

    @abc.abstractmethod
    def window_remove(self, key: str, member: str | None = None) -> None:
        """Remove `member` from the window, or the whole window when None."""

    # -- locks, built on claim/replace/delete ---------------------------------------

    def acquire(self, name: str, ttl: float) -> str | None:
        """A token when the lock `name` was free (held for `ttl` s), else None."""
        token = secrets.token_hex(12)
        return token if self.claim(f"lock:{name}", token, ttl) else None

    def renew(self, name: str, token: str, ttl: float) -> bool:
        """Extend a held lock; False when it expired or someone else holds it."""
        return self.replace(f"lock:{name}", token, token, ttl)

    def release(self, name: str, token: str) -> bool:
        """Free the lock if `token` still holds it."""
        return self.delete(f"lock:{name}", expected=token)

    def holder(self, name: str) -> str | None:
        """The token holding lock `name`, if any."""
        return self.get(f"lock:{name}")
