"""WeCom (企业微信) group robot: the client and its per-robot rate limit.

`POST {WECOM_API_BASE}/cgi-bin/webhook/send?key=KEY` with the message as JSON. A robot
takes 20 messages a minute and refuses more with errcode 130101, so `RateLimiter`
keeps a sliding window per key: a message beyond the 20th waits for the next free
slot instead of being sent and refused.

The key is the robot's secret: it never appears in errors or logs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

RATE_LIMIT = 20  # messages per robot ...
RATE_WINDOW_SECONDS = 60.0  # ... per minute
ERR_RATE_LIMITED = 130101  # "send too frequently"


class RateLimiter:
    """Sliding-window limit per key: at most `limit` sends in any `window` seconds.

    Times are plain seconds from `clock` (injectable) or passed in explicitly, so
    tests and the sender can use their own notion of now.
    """

    def __init__(
        self,
        limit: int = RATE_LIMIT,
        window: float = RATE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        sent = self._sent.setdefault(key, deque())
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        return sent

    def wait_time(self, key: str, now: float | None = None) -> float:
        """Seconds until `key` has a free slot (0.0: one is free now)."""
        now = self.clock() if now is None else now
        sent = self._recent(key, now)
        if len(sent) < self.limit:
            return 0.0
        return max(sent[len(sent) - self.limit] + self.window - now, 0.0)

    def try_reserve(self, key: str, now: float | None = None) -> float:
        """Take a slot if one is free (returns 0.0), else the seconds to wait (no slot taken)."""
        now = self.clock() if now is None else now
        wait = self.wait_time(key, now)
        if wait == 0.0:
            self._sent[key].append(now)
        return wait

    def release(self, key: str, at: float) -> None:
        """Give back the slot taken at `at` (the message was not sent after all)."""
        sent = self._sent.get(key)
        if sent is not None and at in sent:
            sent.remove(at)

    def saturate(self, key: str, now: float | None = None) -> None:
        """The robot said 130101 (someone else used it too): no slot for a whole window."""
        now = self.clock() if now is None else now
        sent = self._recent(key, now)
        while len(sent) < self.limit:
            sent.append(now)

    async def acquire(self, key: str) -> None:
        """Wait until a slot of `key` is free and take it."""
        while True:
            wait = self.try_reserve(key)
            if wait == 0.0:
                return
            await self.sleep(wait)


@dataclass(frozen=True)
class RobotResult:
    ok: bool
    rate_limited: bool = False
    error: str | None = None


class WeComRobot:
    """Sends one message to a group robot; never raises for network or API errors."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_base: str,
        *,
        limiter: RateLimiter | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.http = http
        self.api_base = api_base.rstrip("/")
        self.limiter = limiter
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    async def send(self, key: str, payload: dict[str, Any], *, wait: bool = False) -> RobotResult:
        """POST `payload` to the robot `key`.

        `wait=True` first waits for a free slot of the limiter (callers that schedule
        sends themselves, like the outbox sender, reserve the slot beforehand).
        """
        if wait and self.limiter is not None:
            await self.limiter.acquire(key)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            async with self.http.post(
                f"{self.api_base}/cgi-bin/webhook/send",
                params={"key": key},
                data=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self.timeout,
            ) as response:
                raw = await response.read()
                if response.status != 200:
                    return RobotResult(False, error=f"HTTP {response.status}")
        except asyncio.TimeoutError:
            return RobotResult(False, error="timeout")
        except aiohttp.ClientError as exc:
            # Only the class name: messages of some errors carry the URL with the key.
            return RobotResult(False, error=f"network error: {type(exc).__name__}")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return RobotResult(False, error="answer is not JSON")
        if not isinstance(data, dict):
            return RobotResult(False, error="answer is not a JSON object")
        errcode = data.get("errcode")
        if errcode == 0:
            return RobotResult(True)
        errmsg = str(data.get("errmsg") or "")[:200]
        if errcode == ERR_RATE_LIMITED:
            return RobotResult(False, rate_limited=True, error=f"errcode {errcode}: {errmsg}")
        return RobotResult(False, error=f"errcode {errcode}: {errmsg}")
