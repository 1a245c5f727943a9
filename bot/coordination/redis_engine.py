"""The Redis engine: every process of a deployment sees the same keys.

Keys are prefixed (`na:` by default) so one Redis database can be shared with
Rasa's lock store. Any Redis error becomes `SharedStateUnavailable`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from bot.coordination.base import SharedState, SharedStateUnavailable

T = TypeVar("T")

# Compare-and-set and compare-and-delete, atomic inside Redis.
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return value
"""


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 1)


def _unavailable(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise SharedStateUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    return wrapper


class RedisState(SharedState):
    """Shared state in one Redis database."""

    name = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "na:",
        socket_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.clock = clock
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            decode_responses=True,
            health_check_interval=30,
        )
        self._replace = self.client.register_script(_REPLACE)
        self._delete_if = self.client.register_script(_DELETE_IF)
        self._incr = self.client.register_script(_INCR)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def now(self) -> float:
        # Wall clocks of the machines (NTP), not Redis's TIME: one round trip less.
        return self.clock()

    @_unavailable
    def ping(self) -> bool:
        return bool(self.client.ping())

    @_unavailable
    def get(self, key: str) -> str | None:
        return self.client.get(self._k(key))

    @_unavailable
    def put(self, key: str, value: str, ttl: float) -> None:
        self.client.set(self._k(key), value, px=_ms(ttl))

    @_unavailable
    def claim(self, key: str, value: str, ttl: float) -> bool:
        return bool(self.client.set(self._k(key), value, px=_ms(ttl), nx=True))

    @_unavailable
    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        return bool(self._replace(keys=[self._k(key)], args=[expected, value, _ms(ttl)]))

    @_unavailable
    def delete(self, key: str, expected: str | None = None) -> bool:
        if expected is None:
            return bool(self.client.delete(self._k(key)))
        return bool(self._delete_if(keys=[self._k(key)], args=[expected]))

    @_unavailable
    def incr(self, key: str, amount: int, ttl: float) -> int:
        return int(self._incr(keys=[self._k(key)], args=[amount, _ms(ttl)]))

    @_unavailable
    def window_add(self, key: str, member: str, stamp: float, ttl: float) -> None:
        pipe = self.client.pipeline()
        pipe.zadd(self._k(key), {member: stamp})
        pipe.pexpire(self._k(key), _ms(ttl))
        pipe.execute()

    @_unavailable
    def window_stamps(self, key: str, since: float) -> list[float]:
        pipe = self.client.pipeline()
        pipe.zremrangebyscore(self._k(key), "-inf", since)
        pipe.zrange(self._k(key), 0, -1, withscores=True)
        _, members = pipe.execute()
        return [float(score) for _, score in members]

    @_unavailable
    def window_remove(self, key: str, member: str | None = None) -> None:
        if member is None:
            self.client.delete(self._k(key))
        else:
            self.client.zrem(self._k(key), member)

    def close(self) -> None:
        self.client.close()
