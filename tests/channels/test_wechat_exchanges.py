"""The in-flight/recent exchange map behind retry deduplication."""

from __future__ import annotations

import asyncio

from bot.channels.wechat_exchanges import Delivery, Exchange, InMemoryExchangeStore


def done_future(text: str = "answer") -> asyncio.Future[str]:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_result(text)
    return future


async def test_get_or_create_creates_once() -> None:
    store = InMemoryExchangeStore()
    created = []

    def start() -> Exchange:
        created.append(1)
        return Exchange(("o1", "m1"), done_future())

    first, new1 = store.get_or_create(("o1", "m1"), start)
    second, new2 = store.get_or_create(("o1", "m1"), start)
    assert (new1, new2) == (True, False) and first is second and created == [1]


async def test_completed_entries_expire_after_ttl_in_flight_ones_do_not() -> None:
    now = [0.0]
    store = InMemoryExchangeStore(ttl_seconds=60, clock=lambda: now[0])
    pending: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    store.get_or_create(
        ("o", "slow"), lambda: Exchange(("o", "slow"), pending, clock=lambda: now[0])
    )
    store.get_or_create(
        ("o", "m"), lambda: Exchange(("o", "m"), done_future(), clock=lambda: now[0])
    )
    await asyncio.sleep(0)  # let the done callbacks run
    now[0] = 61
    # The slow one is first and still running: it stays, and stops the front purge.
    assert store.get(("o", "slow")) is not None
    pending.set_result("late")
    await asyncio.sleep(0)
    now[0] = 200
    assert store.get(("o", "slow")) is None and store.get(("o", "m")) is None
    assert len(store) == 0


async def test_size_is_bounded() -> None:
    store = InMemoryExchangeStore(max_entries=3)
    for i in range(5):
        store.get_or_create(("o", str(i)), lambda i=i: Exchange(("o", str(i)), done_future()))
    assert len(store) == 3
    assert store.get(("o", "0")) is None and store.get(("o", "4")) is not None


async def test_decide_passive_when_someone_waits_else_push() -> None:
    loop = asyncio.get_running_loop()
    waited = Exchange(("o", "1"), loop.create_future())
    assert waited.decide() is Delivery.PENDING  # not done yet: nothing to decide
    waited.waiters = 1
    waited.task.set_result("x")
    assert waited.decide() is Delivery.PASSIVE
    waited.waiters = 0
    assert waited.decide() is Delivery.PASSIVE  # fixed once decided

    nobody = Exchange(("o", "2"), done_future())
    assert nobody.decide() is Delivery.PUSH


async def test_reply_text_of_failed_or_cancelled_task_is_empty() -> None:
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[str] = loop.create_future()
    failed.set_exception(RuntimeError("x"))
    cancelled: asyncio.Future[str] = loop.create_future()
    cancelled.cancel()
    assert Exchange(("o", "f"), failed).reply_text() == ""
    assert Exchange(("o", "c"), cancelled).reply_text() == ""
    assert Exchange(("o", "p"), loop.create_future()).reply_text() == ""
