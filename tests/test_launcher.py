"""The launcher's part: a token for Rasa's HTTP API, the deployed model at start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot import launcher
from bot import settings as settings_module
from bot.settings import load_settings
from bot.training.registry import Deployment, Registry
from tests.training.fakes import write_fake_model


def test_rasa_and_the_web_app_share_the_token(tmp_path: Path):
    settings = replace(load_settings(), rasa_auth_token="s3cret-token")
    rasa = next(s for s in launcher.services(settings, tmp_path / "m.tar.gz") if s.name == "rasa")
    command = rasa.command
    assert command[command.index("--auth-token") + 1] == "s3cret-token"
    assert "--enable-api" in command
    assert launcher.rasa_environment(settings, base={})["RASA_AUTH_TOKEN"] == "s3cret-token"


def test_the_development_token_is_made_once(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(settings_module, "VAR_DIR", tmp_path)
    monkeypatch.setattr(settings_module, "DEV_RASA_TOKEN_FILE", tmp_path / "rasa-auth-token")
    assert settings_module.development_rasa_token() is None  # reading never creates it
    token = settings_module.development_rasa_token(create=True)
    assert token and len(token) >= 24
    assert settings_module.development_rasa_token() == token
    assert settings_module.development_rasa_token(create=True) == token
    assert (tmp_path / "rasa-auth-token").stat().st_mode & 0o777 == 0o600


def test_rasa_starts_with_the_deployed_model(tmp_path: Path, monkeypatch):
    settings = replace(
        load_settings(), models_dir=tmp_path / "models", model_registry_dir=tmp_path / "var"
    )
    fallback = tmp_path / "launcher-model.tar.gz"
    monkeypatch.setattr(launcher, "ensure_model", lambda: fallback)
    assert launcher.serving_model(settings) == fallback  # nothing deployed yet

    registry = Registry.from_settings(settings)
    path = write_fake_model(registry.model_path("model-deployed"), 0.9)
    registry.append_deployment(
        Deployment(model="model-deployed", path=str(path), action="deploy", at="t", by="x")
    )
    assert launcher.serving_model(settings) == path
    path.unlink()  # its file is gone: back to the launcher's own model
    assert launcher.serving_model(settings) == fallback


def test_supervise_restarts_a_crashed_process(tmp_path) -> None:
    """`make run`: a process that dies (say the action server) is started again."""
    import sys

    marker = tmp_path / "started"
    # exits at its first start, stays up at its second
    script = (
        "import pathlib, sys, time\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "first = not m.exists()\n"
        "m.write_text('x')\n"
        "sys.exit(3) if first else time.sleep(30)\n"
    )
    service = launcher.Service("actions", [sys.executable, "-c", script], None)
    launcher.launch(service, {})
    polls = []
    try:
        code = launcher.supervise(
            [service], {}, poll_seconds=0.2, until=lambda: len(polls.append(1) or polls) > 15
        )
        assert code == 0 and len(service.restarts) == 1
        assert service.process is not None and service.process.poll() is None
    finally:
        launcher.stop([service])


def test_supervise_gives_up_on_a_process_that_keeps_exiting() -> None:
    import sys

    service = launcher.Service("actions", [sys.executable, "-c", "raise SystemExit(1)"], None)
    launcher.launch(service, {})
    code = launcher.supervise([service], {}, max_restarts=2, poll_seconds=0.2)
    assert code == 1 and len(service.restarts) == 2


def test_make_run_says_which_mode_it_runs_in():
    from bot import simulator

    base = replace(
        load_settings(), wechat_app_secret=None, wechat_aes_key=None, simulator_enabled=True
    )
    development = simulator.development_settings(base)
    text = launcher.mode_banner(development)
    assert text.startswith("Mode: development") and "simulator" in text and "admins only" in text
    assert "plaintext mode" in text

    production = replace(
        base,
        wechat_app_secret="real-secret",
        wechat_appid="wx123",
        wechat_aes_key="k" * 43,
        simulator_enabled=False,
    )
    assert simulator.development_settings(production) is None
    text = launcher.mode_banner(production)
    assert text.startswith("Mode: PRODUCTION")
    assert "Development tools OFF" in text and "plaintext messages are refused" in text
    text = launcher.mode_banner(replace(production, wechat_compat_mode=True))
    assert "compatible mode" in text


def test_the_compat_mode_reaches_rasa():
    env = launcher.rasa_environment(replace(load_settings(), wechat_compat_mode=True), base={})
    assert env["WECHAT_COMPAT_MODE"] == "true"
