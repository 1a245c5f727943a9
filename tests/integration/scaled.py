"""A scaled set-up on 127.0.0.1 for the fault tests: `make run-scale`'s layout
(bot.scale) with every port ephemeral, on PostgreSQL reached through a TCP proxy
the test can cut (the database "unavailable"), Redis, HAProxy, and a fake WeChat
customer-service API. Skips, saying why, without PostgreSQL, Redis or HAProxy."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot import launcher, scale
from bot.launcher import Service
from bot.settings import load_settings
from tests.conftest import free_port
from tests.integration.test_wechat_webhook import FakeCustomerServiceApi

APPID, APP_SECRET = "wxfaults0000000001", "faults-secret"
RASA_TOKEN = "faults-rasa-token"


def requirements_or_skip() -> tuple[str, str, str]:
    database, redis_url = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if not database or not database.startswith("postgresql"):
        pytest.skip("TEST_DATABASE_URL (PostgreSQL) not set: the scaled set-up needs it")
    if not redis_url:
        pytest.skip("TEST_REDIS_URL not set: the scaled set-up needs Redis")
    haproxy = scale.find_haproxy()
    if haproxy is None:
        pytest.skip("HAProxy not installed (make haproxy-deps): no load balancer to test")
    return database, redis_url, haproxy


@contextmanager
def fresh_database(base_url: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of `base_url`, dropped afterwards."""
    name = f"faults_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class CuttableProxy:
    """A TCP proxy to PostgreSQL that the test can cut: `cut()` closes every
    connection and refuses new ones until `restore()` (the database unavailable)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        self.cut_off.set()
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            self._close(s)

    def restore(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


@dataclass
class ScaledStack:
    layout: scale.ScaleLayout
    env: dict[str, str]
    services: list[Service]
    database_url: str
    wechat_api: FakeCustomerServiceApi
    proxy: CuttableProxy
    log_dir: Path
    killed: list[str] = field(default_factory=list)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.layout.rasa_port}"

    def rasa_server_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.layout.rasa_servers[index]}"

    @property
    def rasa_api_params(self) -> dict[str, str]:
        return {"token": RASA_TOKEN}

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, no goodbye (a crashed process)."""
        process = self.service(name).process
        assert process is not None and process.poll() is None, f"{name} is not running"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.killed.append(name)

    def restart(self, name: str, wait: bool = False, timeout: float = 600) -> None:
        service = self.service(name)
        launcher.launch(service, self.env)
        if wait and service.health_url:
            launcher.wait_healthy(service.health_url, timeout, service.process)


@contextmanager
def scaled_stack(
    tmp_path: Path, rasa_servers: int = 2, action_servers: int = 2, web_apps: int = 2
) -> Iterator[ScaledStack]:
    base_database, redis_url, haproxy = requirements_or_skip()
    model = launcher.ensure_model()
    redis = make_url(redis_url)
    wechat_api = FakeCustomerServiceApi(APPID, APP_SECRET)
    wechat_api.start()
    with fresh_database(base_database) as direct_url:
        direct = make_url(direct_url)
        proxy = CuttableProxy(direct.host or "127.0.0.1", direct.port or 5432)
        database_url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        layout = scale.ScaleLayout(
            rasa_port=free_port(),
            actions_port=free_port(),
            web_port=free_port(),
            rasa_servers=tuple(free_port() for _ in range(rasa_servers)),
            action_servers=tuple(free_port() for _ in range(action_servers)),
            web_apps=tuple(free_port() for _ in range(web_apps)),
        )
        settings = replace(
            load_settings(),
            database_url=database_url,
            tracker_database_url=database_url,
            rasa_port=layout.rasa_port,
            actions_port=layout.actions_port,
            web_port=layout.web_port,
            redis_url=redis_url,
            redis_host=redis.host or "127.0.0.1",
            redis_port=redis.port or 6379,
            redis_db=int(redis.database or 0),
            rasa_auth_token=RASA_TOKEN,
            wechat_appid=APPID,
            wechat_app_secret=APP_SECRET,
            wechat_aes_key=None,
            wechat_aes_key_previous=None,
            wechat_api_base=wechat_api.url,
            wecom_api_base="http://127.0.0.1:9",
            models_dir=model.parent,
            model_registry_dir=tmp_path / "registry",
        )
        env = scale.scale_environment(settings, layout)
        env.update(
            {
                "DATABASE_URL": database_url,
                "WECHAT_APPID": APPID,
                "WECHAT_APP_SECRET": APP_SECRET,
                "WECHAT_API_BASE": wechat_api.url,
                "WECHAT_AES_KEY": "",
                "WECOM_API_BASE": "http://127.0.0.1:9",
                "MODEL_REGISTRY_DIR": str(tmp_path / "registry"),
                "MODELS_DIR": str(model.parent),
                "SIMULATOR_ENABLED": "false",
                "RASA_TELEMETRY_ENABLED": "false",
                "NOTIFY_INTERVAL_SECONDS": "1",
                "REVIEW_INGEST_INTERVAL_SECONDS": "0",
            }
        )
        launcher.prepare_database(env)
        config = tmp_path / "haproxy.cfg"
        config.write_text(scale.haproxy_config(layout), encoding="utf-8")
        services = [
            s
            for s in scale.scale_services(settings, layout, haproxy, config)
            if s.name != "escalation"
        ]
        stack = ScaledStack(layout, env, services, database_url, wechat_api, proxy, tmp_path)
        try:
            launcher.start(services, env, timeout=600)
            yield stack
        finally:
            launcher.stop(services)
            proxy.close()
            wechat_api.stop()


def wait_for_models(stack: ScaledStack, timeout: float = 600) -> None:
    """Until every Rasa server has pulled a model from the model server and answered a
    first message (the first turn of a process is slow: TensorFlow builds its graphs)."""
    import requests

    deadline = time.monotonic() + timeout
    for index in range(len(stack.layout.rasa_servers)):
        while True:
            try:
                status = requests.get(
                    f"{stack.rasa_server_url(index)}/status",
                    params=stack.rasa_api_params,
                    timeout=10,
                )
                if status.ok and status.json().get("model_file"):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"rasa{index + 1} has no model after {timeout:.0f} s")
            time.sleep(1)
        for message in ("你好", "暖气不热"):
            requests.post(
                f"{stack.rasa_server_url(index)}/webhooks/rest/webhook",
                json={"sender": f"warm-up-{index}", "message": message},
                timeout=300,
            ).raise_for_status()
