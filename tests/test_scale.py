"""bot.scale: the layout of `make run-scale` and HAProxy's configuration."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from rasa.utils.endpoints import read_endpoint_config

from bot import scale
from bot.settings import PROJECT_ROOT, load_settings


def settings(**overrides: object):
    values = {
        "rasa_port": 15005,
        "actions_port": 15055,
        "web_port": 18080,
        "scale_rasa_servers": 3,
        "scale_action_servers": 2,
        "scale_web_apps": 2,
        "redis_url": "redis://127.0.0.1:6379/3",
        "database_url": "postgresql://postgres@127.0.0.1:5432/x",
        "rasa_auth_token": "tok",
    }
    values.update(overrides)
    return replace(load_settings(), **values)


def test_layout_puts_each_process_above_its_balancer_port() -> None:
    layout = scale.ScaleLayout.of(settings())
    assert layout.rasa_servers == (15006, 15007, 15008)
    assert layout.action_servers == (15056, 15057)
    assert layout.web_apps == (18081, 18082)
    assert layout.model_server_url == "http://127.0.0.1:18080/model-server/model.tar.gz"


def test_haproxy_config_checks_every_process(tmp_path: Path) -> None:
    text = scale.haproxy_config(scale.ScaleLayout.of(settings()))
    assert "bind 127.0.0.1:15005" in text and "bind 127.0.0.1:18080" in text
    assert text.count(" check inter 1s") == 7
    assert "option httpchk GET /health\n" in text and "option httpchk GET /healthz" in text
    # a Rasa server is in the balance once its WeChat channel has a model to answer with
    assert "option httpchk GET /webhooks/wechat/\n" in text
    haproxy = scale.find_haproxy()
    if haproxy is None:
        pytest.skip("HAProxy not installed (make haproxy-deps): config not checked by it")
    config = tmp_path / "haproxy.cfg"
    config.write_text(text, encoding="utf-8")
    checked = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_services_start_web_apps_before_rasa_servers(tmp_path: Path) -> None:
    s = settings()
    layout = scale.ScaleLayout.of(s)
    services = scale.scale_services(s, layout, "haproxy", tmp_path / "h.cfg")
    names = [service.name for service in services]
    assert names == [
        "haproxy",
        "web1",
        "web2",
        "actions1",
        "actions2",
        "rasa1",
        "rasa2",
        "rasa3",
        "escalation",
    ]
    assert services[1].env == {"WEB_PORT": "18081"}
    rasa1 = services[5].command
    assert "endpoints.scale.yml" in rasa1 and "--model" not in rasa1  # pulled instead


def test_requirements_are_named() -> None:
    problems = scale.check_requirements(settings(redis_url=None, database_url="sqlite:///var/x.db"))
    assert any("REDIS_URL" in p for p in problems)
    assert any("DATABASE_URL" in p for p in problems)


def test_rasa_servers_pull_their_model_from_the_model_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings()
    env = scale.scale_environment(s, scale.ScaleLayout.of(s))
    for name in ("MODEL_SERVER_URL", "RASA_AUTH_TOKEN", "ACTION_ENDPOINT_URL", "REDIS_HOST"):
        monkeypatch.setenv(name, env[name])
    for name in ("TRACKER_DATABASE_URL", "REDIS_PORT", "REDIS_DB"):
        monkeypatch.setenv(name, env[name])
    models = read_endpoint_config(str(PROJECT_ROOT / "endpoints.scale.yml"), "models")
    assert models is not None
    assert models.url == "http://127.0.0.1:18080/model-server/model.tar.gz"
    assert models.token == "tok"
    assert env["ACTION_ENDPOINT_URL"] == "http://127.0.0.1:15055/webhook"


def test_a_dead_rasa_servers_lock_frees_within_a_wechat_exchange() -> None:
    # A SIGKILLed Rasa server's ticket on a resident's conversation is never released:
    # the next server waits for it to expire (Rasa's default: 60 s). WeChat's three
    # tries span 15 s, and the answer is pushed once the turn runs: within 20 s the
    # resident still reads it (tests/integration/test_faults.py waits 45 s at most).
    env = scale.scale_environment(settings(), scale.ScaleLayout.of(settings()))
    assert 0 < int(env["TICKET_LOCK_LIFETIME"]) <= 20
