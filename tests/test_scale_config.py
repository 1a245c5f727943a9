"""Scaling out is configuration: endpoints.scale.yml gives every Rasa server
the same Redis lock store, so one resident's messages are handled in order
whichever server receives them."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse

import pytest
from rasa.core.lock_store import LockStore, RedisLockStore
from rasa.utils.endpoints import read_endpoint_config

from bot.settings import PROJECT_ROOT


@pytest.fixture
def redis_env(monkeypatch: pytest.MonkeyPatch) -> None:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL not set: no Redis to test the scale-out lock store against")
    parsed = urlparse(url)
    monkeypatch.setenv("REDIS_HOST", parsed.hostname or "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(parsed.port or 6379))
    monkeypatch.setenv("REDIS_DB", (parsed.path or "/0").lstrip("/") or "0")
    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:5055/webhook")
    monkeypatch.setenv("TRACKER_DATABASE_URL", "sqlite:///unused.db")
    monkeypatch.setenv("MODEL_SERVER_URL", "http://127.0.0.1:8080/model-server/model.tar.gz")
    monkeypatch.setenv("RASA_AUTH_TOKEN", "t")


def test_two_servers_share_one_queue_per_resident(redis_env):
    config = read_endpoint_config(str(PROJECT_ROOT / "endpoints.scale.yml"), "lock_store")
    server_a, server_b = LockStore.create(config), LockStore.create(config)
    assert isinstance(server_a, RedisLockStore) and isinstance(server_b, RedisLockStore)

    resident = f"oTest-{uuid.uuid4().hex}"
    try:
        first = server_a.issue_ticket(resident)
        second = server_b.issue_ticket(resident)
        assert second == first + 1
        # server B sees A's message is still being handled: B's waits its turn
        lock = server_b.get_lock(resident)
        assert lock is not None and lock.is_someone_waiting()
        assert not lock.is_locked(first) and lock.is_locked(second)
    finally:
        server_a.delete_lock(resident)
