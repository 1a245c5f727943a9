"""In-flight / recent message exchanges, so WeChat's retries never reach Rasa twice.

WeChat gives up on a request after 5 s and posts the same message again, three times in
all. Each (sender, dedup_key) gets one `Exchange` holding the single Rasa task; retries
wait on that task and decide together who delivers the answer:

* PASSIVE: a request was waiting when the answer came, so that request (and any later
  retry) replies with it passively;
* PUSH: nobody was waiting, so the answer goes out once through the customer-service
  API, and later retries get `success`.

The in-memory store holds this process's exchanges. Several Rasa servers behind a
load balancer agree through `SharedExchanges` (bot.coordination: Redis when
REDIS_URL is set): the first server to see a message claims it, keeps the claim
alive while Rasa works and then stores the answer; a retry reaching another server
waits for that answer instead of calling Rasa again. Who delivers is claimed once:
a retry waiting elsewhere claims the passive reply, else the owner claims the push.
An owner that dies stops renewing its claim; the next retry then takes over. A
retry answered `success` (WeChat then tries no more) while the owner still held the
message keeps watching the claim: should it lapse unanswered, that server processes
the message and pushes the answer.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.coordination import SharedState

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


# A running claim lives this long unless renewed; the owner renews it every third of
# it. A dead owner's message is taken over by the retry after this at the latest.
CLAIM_TTL_SECONDS = 8.0
_RUNNING = "running:"


class SharedExchanges:
    """The exchanges of every Rasa server, in shared state (see the module docstring)."""

    def __init__(
        self,
        state: SharedState,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        claim_ttl_seconds: float = CLAIM_TTL_SECONDS,
        instance: str | None = None,
    ) -> None:
        self.state = state
        self.ttl_seconds = ttl_seconds
        self.claim_ttl_seconds = claim_ttl_seconds
        self.instance = instance or secrets.token_hex(6)

    @staticmethod
    def _name(key: ExchangeKey) -> str:
        return f"{key[0]}:{key[1]}"

    def claim(self, key: ExchangeKey) -> bool:
        """True for the one server that processes this message."""
        return self.state.claim(
            f"wechat-exchange:{self._name(key)}",
            _RUNNING + self.instance,
            self.claim_ttl_seconds,
        )

    def renew(self, key: ExchangeKey) -> bool:
        """Keep this server's claim alive while Rasa works."""
        running = _RUNNING + self.instance
        return self.state.replace(
            f"wechat-exchange:{self._name(key)}", running, running, self.claim_ttl_seconds
        )

    def finish(self, key: ExchangeKey, text: str) -> None:
        """Store the answer for retries reaching any server."""
        self.state.put(
            f"wechat-exchange:{self._name(key)}",
            json.dumps({"text": text}, ensure_ascii=False),
            self.ttl_seconds,
        )

    def answer(self, key: ExchangeKey) -> tuple[str, str]:
        """("done", text), ("running", "") or ("missing", ""): nobody holds it."""
        raw = self.state.get(f"wechat-exchange:{self._name(key)}")
        if raw is None:
            return "missing", ""
        if raw.startswith(_RUNNING):
            return "running", ""
        try:
            return "done", str(json.loads(raw).get("text") or "")
        except (ValueError, AttributeError):
            return "done", ""

    def claim_delivery(self, key: ExchangeKey, how: Delivery) -> Delivery:
        """Claim who delivers the answer; the delivery that won (first claim wins)."""
        name = f"wechat-delivery:{self._name(key)}"
        if self.state.claim(name, how.value, self.ttl_seconds):
            return how
        current = self.state.get(name)
        return Delivery(current) if current in (d.value for d in Delivery) else how

    def add_waiter(self, key: ExchangeKey, amount: int) -> int:
        """Count retries waiting on other servers (the owner then lets them reply)."""
        return self.state.incr(f"wechat-waiters:{self._name(key)}", amount, self.ttl_seconds)

    def waiters(self, key: ExchangeKey) -> int:
        return int(self.state.get(f"wechat-waiters:{self._name(key)}") or 0)
