"""Fixtures shared by every layer of tests.

The running stack (action server + Rasa server with the trained model) is
started once per test session, on free ports and a fresh SQLite database, for
the tests marked `rasa_server`. Tests needing a stack configured otherwise (the
WeChat channel in safe mode, say) start their own with `rasa_stack_factory`.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bot import launcher
from bot.settings import load_settings
from tests.fakes import FakeRobot, FakeWeChatApi, serve_on_loopback

# The database fixtures (SQLite always, PostgreSQL with TEST_DATABASE_URL) of every
# test of bot/ that needs the ticket database: tests/database.py.
pytest_plugins = ["tests.database", "tests.shared_state"]

SHARED_SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec"

# Rasa's HTTP API never runs open: one token for every stack of the session, given to
# Rasa and the web app alike (launcher.rasa_environment exports it), and exported here
# so that test code calling the API (`?token=`) reads it from RASA_AUTH_TOKEN.
RASA_TOKEN = os.environ.setdefault("RASA_AUTH_TOKEN", "test-" + secrets.token_urlsafe(16))

# Where the stacks' WeChat channel would send customer-service messages unless a test
# gives it a fake: the discard port of 127.0.0.1, so nothing ever leaves the machine.
NO_WECHAT_API = "http://127.0.0.1:9"


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
    web_url: str = ""
    services: list[launcher.Service] = field(default_factory=list, repr=False)

    @property
    def tracker_database_url(self) -> str:
        return self.env["TRACKER_DATABASE_URL"]

    @property
    def rasa_api_params(self) -> dict[str, str]:
        """`?token=` for Rasa's HTTP API (/model/parse, /status, PUT /model ...)."""
        token = self.env.get("RASA_AUTH_TOKEN")
        return {"token": token} if token else {}

    def stop(self) -> None:
        """Stop the processes (idempotent)."""
        launcher.stop(self.services)


@contextmanager
def running_stack(
    workdir: Path,
    model: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    only: Collection[str] | None = None,
    timeout: float = 240,
    **settings_overrides: Any,
) -> Iterator[RasaStack]:
    """Action server and Rasa server on free ports, SQLite files in `workdir`.

    `settings_overrides` replace fields of bot.settings.Settings (e.g. wechat_appid);
    `env` adds variables to the processes' environment; `only` names the services of
    launcher.services() to start (default: all). The WeChat channel starts in plaintext
    mode without customer-service credentials unless overridden, whatever the
    developer's shell exports; WeChat's and WeCom's APIs point at a closed port of
    127.0.0.1 unless a test gives a fake.
    """
    model = model or launcher.ensure_model()
    database_url = f"sqlite:///{workdir / 'neighbourhood.db'}"
    values: dict[str, Any] = {
        "rasa_port": free_port(),
        "actions_port": free_port(),
        "web_port": free_port(),
        "database_url": database_url,
        "tracker_database_url": f"sqlite:///{workdir / 'conversations.db'}",
        "wechat_appid": None,
        "wechat_aes_key": None,
        "wechat_aes_key_previous": None,
        "wechat_app_secret": None,
        "wechat_api_base": NO_WECHAT_API,
        "wecom_api_base": NO_WECHAT_API,
        "rasa_auth_token": RASA_TOKEN,
    }
    values.update(settings_overrides)
    settings = replace(load_settings(), **values)
    stack_env = launcher.rasa_environment(settings)
    stack_env.update(
        {
            "DATABASE_URL": settings.database_url,
            "RASA_PORT": str(settings.rasa_port),
            "ACTIONS_PORT": str(settings.actions_port),
            "WEB_PORT": str(settings.web_port),
            "WECOM_API_BASE": settings.wecom_api_base,
            "RASA_URL": f"http://127.0.0.1:{settings.rasa_port}",
            # Read by bot.settings in the Rasa process; rasa_environment() only exports
            # what the YAML files name.
            "WECHAT_REPLY_DEADLINE_SECONDS": str(settings.wechat_reply_deadline_seconds),
            "WECHAT_AES_KEY_PREVIOUS": settings.wechat_aes_key_previous or "",
            "RASA_TELEMETRY_ENABLED": "false",
        }
    )
    stack_env.update(env or {})
    launcher.prepare_database(stack_env)
    stack_services = [
        service
        for service in launcher.services(settings, model)
        if only is None or service.name in only
    ]
    stack = RasaStack(
        rasa_url=f"http://127.0.0.1:{settings.rasa_port}",
        actions_url=f"http://127.0.0.1:{settings.actions_port}",
        web_url=f"http://127.0.0.1:{settings.web_port}",
        database_url=database_url,
        env=stack_env,
        services=stack_services,
    )
    try:
        launcher.start(stack_services, stack_env, timeout=timeout)
        yield stack
    finally:
        stack.stop()


StackFactory = Callable[..., RasaStack]


@pytest.fixture(scope="session")
def stack_model() -> Path:
    """The model of the current training inputs (trained if missing), resolved once:
    every stack of the session runs the same model even if the data changes meanwhile."""
    return launcher.ensure_model()


@pytest.fixture(scope="session")
def rasa_stack_factory(
    tmp_path_factory: pytest.TempPathFactory, stack_model: Path
) -> Iterator[StackFactory]:
    """`rasa_stack_factory(**settings_overrides, env={...})` -> a started RasaStack.

    Each stack gets its own ports and databases; `stack.stop()` stops it early,
    otherwise it stops at the end of the session.
    """
    contexts: list[Any] = []

    def start(name: str = "stack", **kwargs: Any) -> RasaStack:
        kwargs.setdefault("model", stack_model)
        context = running_stack(tmp_path_factory.mktemp(name), **kwargs)
        stack = context.__enter__()
        contexts.append(context)
        return stack

    try:
        yield start
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def rasa_stack(rasa_stack_factory: StackFactory) -> Iterator[RasaStack]:
    """Action server and Rasa server with the current model, on free ports."""
    stack = rasa_stack_factory("stack")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def fake_wechat_api() -> AsyncIterator[FakeWeChatApi]:
    """WeChat's token and customer-service endpoints on a free port of 127.0.0.1."""
    fake = FakeWeChatApi()
    async with serve_on_loopback(fake.routes()) as url:
        fake.url = url
        yield fake


@pytest.fixture
async def fake_robot() -> AsyncIterator[FakeRobot]:
    """A WeCom group robot on a free port of 127.0.0.1."""
    fake = FakeRobot()
    async with serve_on_loopback([("POST", "/cgi-bin/webhook/send", fake.send)]) as url:
        fake.url = url
        yield fake
