"""Settings: production and development modes (issue 15)."""

from __future__ import annotations

import pytest

from bot.settings import DEV_WECHAT_APP_SECRET, load_settings


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WECHAT_APP_SECRET", "SIMULATOR_ENABLED", "WECHAT_COMPAT_MODE"):
        monkeypatch.delenv(name, raising=False)


def test_no_secret_is_development_with_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.mode == "development" and settings.simulator_enabled
    monkeypatch.setenv("WECHAT_APP_SECRET", DEV_WECHAT_APP_SECRET)
    settings = load_settings()
    assert settings.mode == "development" and settings.simulator_enabled


def test_a_real_secret_is_production_without_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_APP_SECRET", "0123456789abcdef0123456789abcdef")
    settings = load_settings()
    assert settings.mode == "production" and not settings.simulator_enabled
    monkeypatch.setenv("SIMULATOR_ENABLED", "true")
    assert load_settings().simulator_enabled  # switched on explicitly


def test_compat_mode_is_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().wechat_compat_mode is False
    monkeypatch.setenv("WECHAT_COMPAT_MODE", "true")
    assert load_settings().wechat_compat_mode is True
