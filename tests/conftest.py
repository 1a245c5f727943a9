"""Fixtures shared by every layer of tests.

The running stack (action server + Rasa server with the trained model) is
started once per test session, on free ports and a fresh SQLite database, for
the tests marked `rasa_server`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bot import launcher
from bot.settings import load_settings

SHARED_SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RasaStack:
    rasa_url: str
    actions_url: str
    database_url: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def rasa_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaStack]:
    """Action server and Rasa server with the current model, on free ports."""
    model = launcher.ensure_model()
    workdir = tmp_path_factory.mktemp("stack")
    database_url = f"sqlite:///{workdir / 'neighbourhood.db'}"
    settings = replace(
        load_settings(),
        rasa_port=free_port(),
        actions_port=free_port(),
        database_url=database_url,
        tracker_database_url=f"sqlite:///{workdir / 'conversations.db'}",
    )
    env = launcher.rasa_environment(settings)
    env.update(
        {
            "DATABASE_URL": database_url,
            "RASA_PORT": str(settings.rasa_port),
            "ACTIONS_PORT": str(settings.actions_port),
        }
    )
    launcher.prepare_database(env)
    stack_services = launcher.services(settings, model)
    try:
        launcher.start(stack_services, env, timeout=240)
        yield RasaStack(
            rasa_url=f"http://127.0.0.1:{settings.rasa_port}",
            actions_url=f"http://127.0.0.1:{settings.actions_port}",
            database_url=database_url,
            env=env,
        )
    finally:
        launcher.stop(stack_services)
