"""Accounts: passwords, login throttling (bot.accounts; the pages are tests/web)."""

from __future__ import annotations

from bot import accounts


def test_password_hash_is_salted_scrypt_and_verifies() -> None:
    first, second = accounts.hash_password("s3cret-pass"), accounts.hash_password("s3cret-pass")
    assert first.startswith("scrypt$n=16384,r=8,p=1$") and first != second  # random salt
    assert accounts.verify_password("s3cret-pass", first)
    assert not accounts.verify_password("s3cret-pasS", first)
    assert not accounts.verify_password("s3cret-pass", None)
    assert not accounts.verify_password("s3cret-pass", "md5$abc")
    assert not accounts.verify_password("s3cret-pass", "scrypt$garbage")


def test_throttle_counts_simultaneous_attempts() -> None:
    now = [1000.0]
    throttle = accounts.LoginThrottle(per_phone=2, per_address=10, clock=lambda: now[0])
    stamps = [throttle.attempt("p", "a") for _ in range(2)]  # both in flight at once
    assert throttle.retry_after("p", "a") > 0
    throttle.succeeded("p", "a", stamps[0])
    assert throttle.retry_after("p", "a") == 0
    now[0] += 901
    assert throttle.retry_after("x", "a") == 0


def test_two_web_processes_count_failures_together(shared_state) -> None:
    first = accounts.LoginThrottle(per_phone=3, per_address=100, state=shared_state)
    second = accounts.LoginThrottle(per_phone=3, per_address=100, state=shared_state)
    first.attempt("13800000001", "10.0.0.1")
    second.attempt("13800000001", "10.0.0.2")
    assert first.retry_after("13800000001", "10.0.0.3") == 0
    first.attempt("13800000001", "10.0.0.1")
    # the third failure, wherever it happened, locks the phone everywhere
    assert second.retry_after("13800000001", "10.0.0.9") > 0
    assert second.retry_after("13800000002", "10.0.0.9") == 0
