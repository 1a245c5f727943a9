"""`make run` (bot.launcher.run) supervises its processes: the real action server,
SIGKILLed, is started again by the supervisor and answers its health check."""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from bot import launcher
from bot.settings import load_settings
from tests.conftest import free_port


def test_make_run_supervises_every_process_it_starts(monkeypatch, tmp_path: Path) -> None:
    settings = replace(load_settings(), rasa_auth_token="supervised-token")
    started: list[str] = []
    supervised: list[str] = []
    monkeypatch.setattr(launcher, "get_settings", lambda: settings)
    monkeypatch.setattr(launcher, "prepare_database", lambda env: None)
    monkeypatch.setattr(launcher, "serving_model", lambda s: tmp_path / "model.tar.gz")
    monkeypatch.setattr(
        launcher, "start", lambda services, env, **kw: started.extend(s.name for s in services)
    )
    monkeypatch.setattr(launcher, "stop", lambda services: None)

    def supervise(services: list[launcher.Service], env: dict[str, str], **kw: object) -> int:
        supervised.extend(s.name for s in services)
        return 0

    monkeypatch.setattr(launcher, "supervise", supervise)
    assert launcher.run() == 0
    assert "actions" in supervised and sorted(supervised) == sorted(started)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def test_a_killed_action_server_is_started_again(tmp_path: Path) -> None:
    settings = replace(load_settings(), actions_port=free_port())
    actions = next(
        s for s in launcher.services(settings, tmp_path / "model.tar.gz") if s.name == "actions"
    )
    assert actions.health_url is not None
    env = launcher.rasa_environment(settings)
    launcher.start([actions], env, timeout=180)
    try:
        assert actions.process is not None
        killed = actions.process.pid
        actions.process.send_signal(signal.SIGKILL)  # a crash: no clean-up
        actions.process.wait(timeout=10)
        deadline = time.monotonic() + 180

        def back() -> bool:
            if time.monotonic() > deadline:
                raise TimeoutError("the action server was not started again within 180 s")
            assert actions.process is not None
            return actions.process.pid != killed and _healthy(str(actions.health_url))

        assert launcher.supervise([actions], env, poll_seconds=0.2, until=back) == 0
        assert len(actions.restarts) == 1 and actions.process.poll() is None
    finally:
        launcher.stop([actions])
