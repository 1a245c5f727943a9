"""Train when needed and start the assistant's processes (`make run`).

A model is named after the fingerprint of everything it is trained from
(bot.training.train: training data, domain, config, our NLU component). "Is the
model stale?" is then one file lookup, and a model on disk always says what it
was built from.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.settings import (
    DEV_WECHAT_TOKEN,
    PROJECT_ROOT,
    Settings,
    development_rasa_token,
    get_settings,
)
from bot.training.registry import MODEL_SUFFIX
from bot.training.train import TRAINING_DATA, train, training_fingerprint


def model_path(fingerprint: str, models_dir: Path) -> Path:
    """Where the launcher keeps the model of a fingerprint: models/model-<fingerprint>.tar.gz."""
    return models_dir / f"model-{fingerprint}{MODEL_SUFFIX}"


def rasa_command(*args: str) -> list[str]:
    """The rasa CLI of this virtual environment, with bot.rasa_patches installed."""
    return [sys.executable, "-m", "bot.rasa_server", *args]


def ensure_model(force: bool = False, models_dir: Path | None = None) -> Path:
    """Return the model for the current inputs, training it first if missing."""
    settings = get_settings()
    models_dir = models_dir or settings.models_dir
    target = model_path(training_fingerprint(), models_dir)
    if target.exists() and not force:
        return target
    print(f"Training model {target.name} (data, domain or config changed) ...", flush=True)
    started = time.monotonic()
    # Train under a temporary name and rename when complete: another process
    # looking for the model meanwhile must never load a half-written file.
    partial = f"partial-{os.getpid()}-{target.name.removesuffix(MODEL_SUFFIX)}"
    trained = train(
        PROJECT_ROOT / "config.yml",
        PROJECT_ROOT / "domain.yml",
        [PROJECT_ROOT / d for d in TRAINING_DATA],
        models_dir,
        partial,
        env=rasa_environment(settings),
    )
    os.replace(trained, target)
    print(f"Trained in {time.monotonic() - started:.0f} s: {target}", flush=True)
    return target


def rasa_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for Rasa processes: every `${VAR}` its YAML files read.

    Rasa refuses unset variables, so each gets its value from the settings
    (environment first, development default otherwise).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("PYTHONPATH", str(PROJECT_ROOT))
    env.update(
        {
            "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{settings.actions_port}/webhook",
            "TRACKER_DATABASE_URL": settings.tracker_database_url,
            "WECHAT_TOKEN": settings.wechat_token,
            "WECHAT_APPID": settings.wechat_appid or "",
            "WECHAT_AES_KEY": settings.wechat_aes_key or "",
            "WECHAT_APP_SECRET": settings.wechat_app_secret or "",
            "WECHAT_API_BASE": settings.wechat_api_base,
            "WECHAT_AES_KEY_PREVIOUS": settings.wechat_aes_key_previous or "",
            "WECHAT_REPLY_DEADLINE_SECONDS": str(settings.wechat_reply_deadline_seconds),
            "WECHAT_COMPAT_MODE": "true" if settings.wechat_compat_mode else "false",
            "DATABASE_URL": settings.database_url,
            "WEB_PORT": str(settings.web_port),
            "RASA_PORT": str(settings.rasa_port),
            "ACTIONS_PORT": str(settings.actions_port),
            "REDIS_HOST": settings.redis_host,
            "REDIS_PORT": str(settings.redis_port),
            "REDIS_DB": str(settings.redis_db),
            # endpoints.scale.yml: where the Rasa servers pull their model from
            "MODEL_SERVER_URL": os.environ.get("MODEL_SERVER_URL")
            or f"http://127.0.0.1:{settings.web_port}/model-server/model.tar.gz",
            "RASA_AUTH_TOKEN": settings.rasa_auth_token or "",
        }
    )
    # Rasa would otherwise send usage telemetry (no network here anyway)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    # TensorFlow's start-up chatter hides the lines that matter
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Rasa and the web app (which hot-swaps models with PUT /model) share one token.
    if settings.rasa_auth_token:
        env["RASA_AUTH_TOKEN"] = settings.rasa_auth_token
    return env


@dataclass
class Service:
    name: str
    command: list[str]
    health_url: str | None  # None: a worker without an HTTP port
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)  # this process's own variables
    restarts: list[float] = field(default_factory=list)  # when it was restarted


def services(settings: Settings, model: Path, endpoints: str | None = None) -> list[Service]:
    endpoints = endpoints or settings.rasa_endpoints
    return [
        Service(
            "actions",
            rasa_command(
                "run", "actions", "--actions", "actions", "--port", str(settings.actions_port)
            ),
            f"http://127.0.0.1:{settings.actions_port}/health",
        ),
        Service(
            "rasa",
            rasa_command(
                "run",
                "--model",
                str(model),
                "--endpoints",
                endpoints,
                "--credentials",
                "credentials.yml",
                "--port",
                str(settings.rasa_port),
                "--enable-api",
                *(["--auth-token", token] if (token := settings.rasa_auth_token) else []),
            ),
            f"http://127.0.0.1:{settings.rasa_port}/",
        ),
        Service(
            "web",
            [sys.executable, "-m", "bot", "web"],
            f"http://127.0.0.1:{settings.web_port}/healthz",
        ),
        escalation_service(settings),
    ]


def escalation_service(settings: Settings) -> Service:
    """SLA escalation inside the running service: overdue tickets move
    grid -> community -> street, each step once, in the event log."""
    return Service(
        "escalation",
        [
            sys.executable,
            "-m",
            "bot",
            "escalate",
            "--every",
            str(settings.escalation_interval_seconds),
        ],
        None,
    )


def wait_healthy(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200; fail early when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy within {timeout:.0f} s")


def launch(service: Service, env: Mapping[str, str]) -> None:
    """Start (or restart) one service's process."""
    service.process = subprocess.Popen(
        service.command, cwd=PROJECT_ROOT, env={**env, **service.env}
    )


def start(all_services: list[Service], env: Mapping[str, str], timeout: float = 180) -> None:
    for service in all_services:
        launch(service, env)
    for service in all_services:
        if service.health_url:
            wait_healthy(service.health_url, timeout, service.process)


# A process that exits is started again, unless it exited this often within the window:
# then something is wrong that restarting will not fix.
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0


def supervise(
    all_services: list[Service],
    env: Mapping[str, str],
    *,
    max_restarts: int = MAX_RESTARTS,
    window: float = RESTART_WINDOW_SECONDS,
    poll_seconds: float = 1.0,
    until: Callable[[], bool] | None = None,
) -> int:
    """Restart whichever process exits; 1 when one keeps exiting, 0 once `until()`."""
    while until is None or not until():
        for service in all_services:
            if service.process is None or service.process.poll() is None:
                continue
            now = time.monotonic()
            service.restarts = [t for t in service.restarts if now - t < window]
            code = service.process.returncode
            if len(service.restarts) >= max_restarts:
                print(
                    f"{service.name} exited {max_restarts} times within {window:.0f} s "
                    f"(last exit status {code}); stopping everything.",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            print(f"{service.name} exited (status {code}); restarting it.", flush=True)
            service.restarts.append(now)
            launch(service, env)
        time.sleep(poll_seconds)
    return 0


def stop(all_services: list[Service]) -> None:
    for service in all_services:
        if service.process and service.process.poll() is None:
            service.process.send_signal(signal.SIGINT)
    for service in all_services:
        if service.process:
            try:
                service.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.process.kill()


def prepare_database(env: Mapping[str, str]) -> None:
    """Migrate the ticket database to the newest schema; load the demo grid
    directory into an empty one. Run as `python -m bot` in the given
    environment, exactly as an admin would."""
    for args in (("db", "upgrade"), ("demo-load",)):
        subprocess.run(
            [sys.executable, "-m", "bot", *args], cwd=PROJECT_ROOT, env=dict(env), check=True
        )


def serving_model(settings: Settings) -> Path:
    """The model to start Rasa with: the one last deployed (bot.training registry)
    if its file exists, else the model of the current training inputs."""
    from bot.training.registry import Registry

    registry = Registry.from_settings(settings)
    deployed = registry.deployed()
    if deployed is not None:
        name, path = deployed
        if registry.record_for(name, path).fingerprint != training_fingerprint():
            print(
                f"Serving the deployed model {name}; the training data changed since "
                "(python -m bot nlu retrain trains, compares and deploys).",
                flush=True,
            )
        return path
    return ensure_model()


def mode_banner(settings: Settings) -> str:
    """Which mode `make run` runs in, and what that means (printed at start)."""
    if settings.real_wechat_secret:
        lines = [
            "Mode: PRODUCTION (a WeChat app secret is configured): messages reach residents' "
            "WeChat."
        ]
    else:
        lines = [
            "Mode: development (no real WECHAT_APP_SECRET): residents' WeChat receives nothing."
        ]
    if settings.simulator_enabled:
        lines.append(
            "  Development tools ON: the resident simulator (/simulator, logged-in admins only)"
            + (
                " - switched on explicitly (SIMULATOR_ENABLED)."
                if settings.real_wechat_secret
                else "."
            )
        )
    else:
        lines.append("  Development tools OFF: no resident simulator.")
    if settings.wechat_safe_mode:
        lines.append(
            "  WeChat safe mode (AES): "
            + (
                "compatible mode, plaintext messages accepted too."
                if settings.wechat_compat_mode
                else "plaintext messages are refused."
            )
        )
    else:
        lines.append("  WeChat plaintext mode (no WECHAT_AES_KEY).")
    return "\n".join(lines)


def run() -> int:
    """`make run`: prepare everything, start all processes, stop them on Ctrl-C."""
    from bot import simulator

    settings = get_settings()
    # Development: with no real WECHAT_APP_SECRET nothing could reach residents'
    # WeChat, so the processes started here send customer-service messages (late
    # answers, ticket notices) to the resident simulator's stand-in of WeChat's API on
    # the web app, with a development appid/secret (plaintext mode, no AES key). A
    # configured secret leaves everything as configured.
    dev_settings = simulator.development_settings(settings)
    settings = dev_settings or settings
    print(mode_banner(settings), flush=True)
    (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    # Rasa's HTTP API can swap the model: never serve it without a token.
    if not settings.rasa_auth_token:
        settings = replace(settings, rasa_auth_token=development_rasa_token(create=True))
    env = rasa_environment(settings)
    prepare_database(env)
    model = serving_model(settings)
    all_services = services(settings, model)
    try:
        start(all_services, env)
        token_note = " (development token)" if settings.wechat_token == DEV_WECHAT_TOKEN else ""
        simulator_banner = ""
        if settings.simulator_enabled:
            simulator_banner = f"  居民模拟器 http://127.0.0.1:{settings.web_port}/simulator\n"
        if dev_settings is not None:
            simulator_banner += (
                "  WECHAT_APP_SECRET unset: customer-service messages go to the simulator's\n"
                f"  stand-in of WeChat's API ({settings.wechat_api_base}),\n"
                "  with a development appid/secret; residents' WeChat receives nothing.\n"
            )
        print(
            "\nThe neighbourhood assistant is running:\n"
            f"  Rasa server      http://127.0.0.1:{settings.rasa_port}/\n"
            f"  WeChat webhook   http://127.0.0.1:{settings.rasa_port}/webhooks/wechat/webhook"
            f"  token: {settings.wechat_token}{token_note}\n"
            f"  REST channel     http://127.0.0.1:{settings.rasa_port}/webhooks/rest/webhook\n"
            f"  action server    http://127.0.0.1:{settings.actions_port}/health\n"
            f"  web app          http://127.0.0.1:{settings.web_port}/\n"
            f"{simulator_banner}"
            f"{mode_banner(settings)}\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        # Supervised: a crashed process (say the action server) is started again.
        return supervise(all_services, env)
    except KeyboardInterrupt:
        return 0
    finally:
        stop(all_services)


def shell() -> int:
    """`make shell`: chat in the terminal, with the action server running."""
    settings = get_settings()
    model = ensure_model()
    actions = next(s for s in services(settings, model) if s.name == "actions")
    env = rasa_environment(settings)
    try:
        start([actions], env)
        return subprocess.run(
            rasa_command("shell", "--model", str(model), "--endpoints", "endpoints.yml"),
            cwd=PROJECT_ROOT,
            env=env,
        ).returncode
    finally:
        stop([actions])


def test_stories() -> int:
    """End-to-end test stories (tests/stories): NLU and dialogue together."""
    model = ensure_model()
    return subprocess.run(
        rasa_command(
            "test",
            "core",
            "--model",
            str(model),
            "--stories",
            "tests/stories",
            "--out",
            "results/stories",
            "--fail-on-prediction-errors",
        ),
        cwd=PROJECT_ROOT,
        env=rasa_environment(get_settings()),
    ).returncode


def evaluate(folds: int = 5) -> int:
    """`make eval`: k-fold cross-validation of the NLU pipeline."""
    import json

    out = PROJECT_ROOT / "results" / "cross-validation"
    completed = subprocess.run(
        rasa_command(
            "test",
            "nlu",
            "--nlu",
            "data/nlu",
            "--config",
            "config.yml",
            "--cross-validation",
            "--folds",
            str(folds),
            "--out",
            str(out),
        ),
        cwd=PROJECT_ROOT,
        env=rasa_environment(get_settings()),
    )
    if completed.returncode != 0:
        return completed.returncode
    report = json.loads((out / "intent_report.json").read_text(encoding="utf-8"))
    print(f"\n{folds}-fold cross-validation of config.yml on data/nlu (test folds):")
    print(f"  accuracy  {report['accuracy']:.3f}")
    print(f"  macro F1  {report['macro avg']['f1-score']:.3f}")
    print(f"  reports   {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "run"
    if command == "run":
        return run()
    if command == "run-scale":
        from bot.scale import run_scale

        return run_scale()
    if command == "train":
        ensure_model(force="--force" in argv)
        return 0
    if command == "shell":
        return shell()
    if command == "test-stories":
        return test_stories()
    if command == "eval":
        folds = int(argv[argv.index("--folds") + 1]) if "--folds" in argv else 5
        return evaluate(folds)
    if command == "model-path":
        print(ensure_model())
        return 0
    print(
        "usage: python -m bot.launcher "
        "[run|run-scale|train [--force]|shell|eval|test-stories|model-path]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
