"""bot.coordination: the same behaviour from both engines (in-process, Redis)."""

from __future__ import annotations

import threading
import time

from bot.coordination import InProcessState, SharedState


def test_claim_is_won_once_and_expires(shared_state: SharedState) -> None:
    assert shared_state.claim("k", "a", ttl=0.3)
    assert not shared_state.claim("k", "b", ttl=0.3)
    assert shared_state.get("k") == "a"
    time.sleep(0.35)
    assert shared_state.get("k") is None
    assert shared_state.claim("k", "b", ttl=5)


def test_replace_and_delete_compare_first(shared_state: SharedState) -> None:
    shared_state.put("k", "one", ttl=5)
    assert not shared_state.replace("k", "other", "two", ttl=5)
    assert shared_state.replace("k", "one", "two", ttl=5)
    assert shared_state.get("k") == "two"
    assert not shared_state.delete("k", expected="one")
    assert shared_state.delete("k", expected="two")
    assert shared_state.get("k") is None
    assert not shared_state.replace("missing", "x", "y", ttl=5)


def test_counter(shared_state: SharedState) -> None:
    assert shared_state.incr("c", 1, ttl=5) == 1
    assert shared_state.incr("c", 2, ttl=5) == 3
    assert shared_state.incr("c", -3, ttl=5) == 0


def test_window_keeps_stamps_after_since(shared_state: SharedState) -> None:
    shared_state.window_add("w", "a", 10.0, ttl=60)
    shared_state.window_add("w", "b", 20.0, ttl=60)
    shared_state.window_add("w", "c", 30.0, ttl=60)
    assert shared_state.window_stamps("w", since=0) == [10.0, 20.0, 30.0]
    assert shared_state.window_stamps("w", since=15) == [20.0, 30.0]
    shared_state.window_remove("w", "c")
    assert shared_state.window_stamps("w", since=0) == [20.0]
    shared_state.window_remove("w")
    assert shared_state.window_stamps("w", since=0) == []


def test_lock_has_one_holder_at_a_time(shared_state: SharedState) -> None:
    token = shared_state.acquire("train", ttl=5)
    assert token and shared_state.holder("train") == token
    assert shared_state.acquire("train", ttl=5) is None
    assert shared_state.renew("train", token, ttl=5)
    assert not shared_state.release("train", "someone-else")
    assert shared_state.release("train", token)
    assert shared_state.acquire("train", ttl=5)


def test_concurrent_claims_have_one_winner(shared_state: SharedState) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def contend(n: int) -> None:
        barrier.wait()
        if shared_state.claim("race", str(n), ttl=5):
            winners.append(n)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_in_process_state_is_bounded() -> None:
    state = InProcessState(max_keys=3)
    for n in range(5):
        state.put(f"k{n}", "v", ttl=60)
    assert len(state) == 3 and state.get("k0") is None and state.get("k4") == "v"
