"""In-flight / recent message exchanges, so WeChat's retries never reach Rasa twice.

WeChat gives up on a request after 5 s and posts the same message again, three times in
all. Each (sender, dedup_key) gets one `Exchange` holding the single Rasa task; retries
wait on that task and decide together who delivers the answer:

* PASSIVE: a request was waiting when the answer came, so that request (and any later
  retry) replies with it passively;
* PUSH: nobody was waiting, so the answer goes out once through the customer-service
  API, and later retries get `success`.

The in-memory store only works within one Rasa process. With several Rasa instances
behind a load balancer, a retry can land on another instance: an implementation of
`ExchangeStore` backed by Redis would then claim the key with SET NX EX, keep the
decision and the answer text in the same key, and let a retry on another instance
poll it instead of awaiting a local task.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

ExchangeKey = tuple[str, str]  # (sender OpenID, dedup key)

DEFAULT_TTL_SECONDS = 60.0  # WeChat's three tries span ~15 s; a minute is ample.
DEFAULT_MAX_ENTRIES = 10_000


class Delivery(str, enum.Enum):
    PENDING = "pending"
    PASSIVE = "passive"
    PUSH = "push"


@dataclass
class Exchange:
    """One incoming message and its single processing task (result: the reply text)."""

    key: ExchangeKey
    task: asyncio.Future[str]
    clock: Callable[[], float] = time.monotonic
    created_at: float = 0.0
    completed_at: float | None = None
    waiters: int = 0
    passive_replies: int = 0  # requests that answered with the text
    delivery: Delivery = Delivery.PENDING
    push_task: asyncio.Future[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.created_at = self.clock()
        self.task.add_done_callback(self._mark_completed)

    def _mark_completed(self, _task: asyncio.Future[str]) -> None:
        self.completed_at = self.clock()

    def decide(self) -> Delivery:
        """Fix who delivers, once the answer exists: waiting requests, else the push."""
        if self.delivery is Delivery.PENDING and self.task.done():
            self.delivery = Delivery.PASSIVE if self.waiters > 0 else Delivery.PUSH
        return self.delivery

    def reply_text(self) -> str:
        """The answer ('' when there is nothing to say or processing failed)."""
        if not self.task.done() or self.task.cancelled() or self.task.exception():
            return ""
        return self.task.result()

    def expired(self, now: float, ttl: float) -> bool:
        # In-flight exchanges never expire by age: a retry must still find them.
        return self.completed_at is not None and now - self.completed_at > ttl


class ExchangeStore(abc.ABC):
    """Where exchanges live; one method, so a shared (Redis) variant stays small."""

    @abc.abstractmethod
    def get_or_create(
        self, key: ExchangeKey, start: Callable[[], Exchange]
    ) -> tuple[Exchange, bool]:
        """The exchange of `key`, or a new one from `start()`; True when created.

        Must not await between lookup and insert, so two concurrent requests for one
        key can never both create.
        """


class InMemoryExchangeStore(ExchangeStore):
    """Bounded, TTL-limited store of this process's exchanges."""

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[ExchangeKey, Exchange] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ExchangeKey) -> Exchange | None:
        self._purge()
        return self._entries.get(key)

    def get_or_create(
        self, key: ExchangeKey, start: Callable[[], Exchange]
    ) -> tuple[Exchange, bool]:
        self._purge()
        existing = self._entries.get(key)
        if existing is not None:
            return existing, False
        exchange = start()
        self._entries[key] = exchange
        while len(self._entries) > self.max_entries:
            # Oldest first; losing one only means a late retry might be processed twice.
            self._entries.popitem(last=False)
        return exchange, True

    def _purge(self) -> None:
        # Oldest first, stopping at the first live entry: O(expired) per call. A slow
        # in-flight exchange at the front delays purging; max_entries still bounds size.
        now = self._clock()
        while self._entries:
            key, exchange = next(iter(self._entries.items()))
            if not exchange.expired(now, self.ttl_seconds):
                break
            del self._entries[key]
