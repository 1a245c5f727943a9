"""`make run-scale`: several processes of each kind on this machine, behind HAProxy.

N Rasa servers, M action servers and K web apps share PostgreSQL (tickets and the
conversation log) and Redis (Rasa's tracker and lock stores, the event stream the
conversation-log writer copies into PostgreSQL, and bot.coordination for
everything else the processes must agree on). HAProxy (Debian's package) listens
on the usual ports and spreads requests over the processes that pass its health
checks; each process listens on a port of its own above the balancer's. Every Rasa
server pulls its model from the web apps' model server (endpoints.scale.yml), so a
deploy reaches all of them. Every process is supervised (restarted when it exits).

The same layout on several machines is docker-compose.scale.yml (README).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bot.launcher import (
    Service,
    escalation_service,
    prepare_database,
    rasa_command,
    rasa_environment,
    serving_model,
    start,
    stop,
    supervise,
)
from bot.settings import PROJECT_ROOT, Settings, development_rasa_token, get_settings

SCALE_ENDPOINTS = "endpoints.scale.yml"
MODEL_SERVER_PATH = "/model-server/model.tar.gz"
HAPROXY_CANDIDATES = ("haproxy", "/usr/sbin/haproxy")


@dataclass(frozen=True)
class ScaleLayout:
    """Ports of the balancer (the usual ones) and of each process behind it."""

    rasa_port: int
    actions_port: int
    web_port: int
    rasa_servers: tuple[int, ...]
    action_servers: tuple[int, ...]
    web_apps: tuple[int, ...]

    @classmethod
    def of(cls, settings: Settings) -> ScaleLayout:
        def ports(base: int, count: int) -> tuple[int, ...]:
            return tuple(base + 1 + i for i in range(max(count, 1)))

        return cls(
            rasa_port=settings.rasa_port,
            actions_port=settings.actions_port,
            web_port=settings.web_port,
            rasa_servers=ports(settings.rasa_port, settings.scale_rasa_servers),
            action_servers=ports(settings.actions_port, settings.scale_action_servers),
            web_apps=ports(settings.web_port, settings.scale_web_apps),
        )

    @property
    def model_server_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}{MODEL_SERVER_PATH}"


def haproxy_config(layout: ScaleLayout) -> str:
    """HAProxy's configuration: one frontend and backend per kind of process.

    Health checks every second take a dead process out within two seconds. Only
    failed connections are retried elsewhere (HAProxy's default), never a request a
    process may have started on: WeChat's own retries and the MsgId de-duplication
    take care of those.
    """
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    option redispatch",
        "    retries 2",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 330s",  # Rasa waits up to 300 s for an action
        "    timeout check 2s",
    ]
    kinds = (
        # the WeChat channel's check fails until the server has a model to answer with
        ("rasa", layout.rasa_port, layout.rasa_servers, "/webhooks/wechat/"),
        ("actions", layout.actions_port, layout.action_servers, "/health"),
        ("web", layout.web_port, layout.web_apps, "/healthz"),
    )
    for name, port, servers, health in kinds:
        lines += [
            f"frontend {name}",
            f"    bind 127.0.0.1:{port}",
            f"    default_backend {name}_servers",
            f"backend {name}_servers",
            "    balance roundrobin",
            f"    option httpchk GET {health}",
            *(
                f"    server {name}{i + 1} 127.0.0.1:{p} check inter 1s fall 2 rise 1"
                for i, p in enumerate(servers)
            ),
        ]
    return "\n".join(lines) + "\n"


def find_haproxy() -> str | None:
    for candidate in HAPROXY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def scale_services(
    settings: Settings, layout: ScaleLayout, haproxy: str, config_file: Path
) -> list[Service]:
    """HAProxy, the web apps (the model server) first, then action and Rasa servers."""
    token = settings.rasa_auth_token
    services = [
        Service("haproxy", [haproxy, "-db", "-f", str(config_file)], None),
    ]
    services += [
        Service(
            f"web{i + 1}",
            [sys.executable, "-m", "bot", "web"],
            f"http://127.0.0.1:{port}/healthz",
            env={"WEB_PORT": str(port)},
        )
        for i, port in enumerate(layout.web_apps)
    ]
    services += [
        Service(
            f"actions{i + 1}",
            rasa_command("run", "actions", "--actions", "actions", "--port", str(port)),
            f"http://127.0.0.1:{port}/health",
        )
        for i, port in enumerate(layout.action_servers)
    ]
    services += [
        Service(
            f"rasa{i + 1}",
            rasa_command(
                "run",
                "--endpoints",
                SCALE_ENDPOINTS,
                "--credentials",
                "credentials.yml",
                "--port",
                str(port),
                "--enable-api",
                *(["--auth-token", token] if token else []),
            ),
            f"http://127.0.0.1:{port}/",
        )
        for i, port in enumerate(layout.rasa_servers)
    ]
    # The conversation log: endpoints.scale.yml's tracker store sends every event
    # through a Redis stream, this process writes them to the SQL log.
    services.append(
        Service("conversation-log", [sys.executable, "-m", "bot", "conversation-log"], None)
    )
    services.append(escalation_service(settings))
    return services


def check_requirements(settings: Settings) -> list[str]:
    """What is missing for the scaled set-up, in words (empty: nothing)."""
    problems = []
    if not settings.redis_url:
        problems.append("REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
    if not settings.database_url.startswith("postgresql"):
        problems.append(
            "DATABASE_URL is not PostgreSQL (e.g. postgresql://postgres@127.0.0.1:5432/assistant)"
        )
    if find_haproxy() is None:
        problems.append(
            "HAProxy is not installed: as root, `apt-get install -y haproxy` "
            "(`make run-scale` does this when run as root)"
        )
    return problems


def scale_environment(settings: Settings, layout: ScaleLayout) -> dict[str, str]:
    env = rasa_environment(settings)
    env.update(
        {
            # Every Rasa server calls the action servers through the balancer and
            # pulls its model from the web apps' model server.
            "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{layout.actions_port}/webhook",
            "MODEL_SERVER_URL": layout.model_server_url,
            "RASA_ENDPOINTS": SCALE_ENDPOINTS,
            "REDIS_URL": settings.redis_url or "",
            "WEB_BASE_URL": settings.web_base_url or f"http://127.0.0.1:{layout.web_port}",
            "RASA_URL": f"http://127.0.0.1:{layout.rasa_port}",
        }
    )
    # A killed Rasa server's lock on a resident's conversation frees after this
    # (Rasa's default is 60 s: a minute of `success` for that resident).
    env.setdefault("TICKET_LOCK_LIFETIME", "20")
    return env


def run_scale() -> int:
    settings = get_settings()
    problems = check_requirements(settings)
    if problems:
        print("make run-scale needs:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if not settings.rasa_auth_token:
        settings = replace(settings, rasa_auth_token=development_rasa_token(create=True))
    layout = ScaleLayout.of(settings)
    config_file = PROJECT_ROOT / "var" / "haproxy.cfg"
    config_file.parent.mkdir(exist_ok=True)
    config_file.write_text(haproxy_config(layout), encoding="utf-8")
    env = scale_environment(settings, layout)
    prepare_database(env)
    serving_model(settings)  # trained if missing: the model server hands it out
    haproxy = find_haproxy() or "haproxy"
    all_services = scale_services(settings, layout, haproxy, config_file)
    try:
        start(all_services, env, timeout=600)
        print(
            "\nThe neighbourhood assistant is running, scaled out behind HAProxy:\n"
            f"  WeChat webhook   http://127.0.0.1:{layout.rasa_port}/webhooks/wechat/webhook"
            f"  ({len(layout.rasa_servers)} Rasa servers: ports {_ports(layout.rasa_servers)})\n"
            f"  action servers   http://127.0.0.1:{layout.actions_port}/health"
            f"  ({_ports(layout.action_servers)})\n"
            f"  web app          http://127.0.0.1:{layout.web_port}/"
            f"  ({_ports(layout.web_apps)})\n"
            f"  model server     {layout.model_server_url}\n"
            "Every process is restarted when it exits. Ctrl-C stops everything.\n",
            flush=True,
        )
        return supervise(all_services, env)
    except KeyboardInterrupt:
        return 0
    finally:
        stop(all_services)


def _ports(ports: tuple[int, ...]) -> str:
    return ", ".join(str(p) for p in ports)
