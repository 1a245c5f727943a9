"""The one place where configuration is read.

Every setting comes from an environment variable with a development default, so
`make run` works on a fresh machine and production only sets variables.
Secrets have no committed value: where one is needed and unset, a development
value is generated or the feature stays off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"

DEV_WECHAT_TOKEN = "neighbourhood-dev-token"
# The app secret `make run` gives its processes when none is configured (they
# then talk to the simulator's stand-in of WeChat's API): never a real one.
DEV_WECHAT_APP_SECRET = "neighbourhood-dev-app-secret"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def has_real_wechat_secret(secret: str | None) -> bool:
    return bool(secret) and secret != DEV_WECHAT_APP_SECRET


def _int_env(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


def _bool_env(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def resolve_sqlite_url(url: str) -> str:
    """Make a relative SQLite path relative to the project root, not the cwd.

    `sqlite:///var/x.db` would otherwise point somewhere else for every
    process started from another directory (tests, the action server).
    """
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        path = url[len(prefix) :]
        if path and path != ":memory:" and not path.startswith(":"):
            return prefix + str(PROJECT_ROOT / path)
    return url


def default_tracker_url(database_url: str) -> str:
    """Where Rasa's conversation log goes when TRACKER_DATABASE_URL is unset.

    On a database server it is the same database as the tickets. With SQLite it
    is a file of its own beside the tickets' file: Rasa writes on every message,
    and keeping it apart means it never holds the lock that a ticket is waiting
    for.
    """
    if database_url.startswith("sqlite:///"):
        path = Path(database_url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            return "sqlite:///" + str(path.with_name("conversations.db"))
    return database_url


@dataclass(frozen=True)
class Settings:
    database_url: str
    tracker_database_url: str
    rasa_port: int
    actions_port: int
    web_port: int
    rasa_url: str
    wechat_token: str
    wechat_appid: str | None
    wechat_aes_key: str | None
    wechat_app_secret: str | None
    wechat_api_base: str
    wecom_api_base: str
    admin_password: str | None
    taxonomy_path: Path
    grid_directory_path: Path
    timezone: str
    escalation_interval_seconds: int
    web_host: str
    web_secret_key: str
    extra: dict[str, str] = field(default_factory=dict)
    # WeChat channel: seconds to wait for the assistant before answering `success` and
    # pushing the answer later (WeChat gives up at 5 s); the EncodingAESKey in force
    # before a key rotation, still tried when decrypting.
    wechat_reply_deadline_seconds: float = 4.0
    wechat_aes_key_previous: str | None = None
    # Notifications: the public address of the web app (links in WeCom messages;
    # empty means http://127.0.0.1:WEB_PORT) and how often the web app's sender
    # looks for due notifications.
    web_base_url: str = ""
    notify_interval_seconds: float = 2.0
    # Mark the web app's cookies Secure (send them over https only). Set it when
    # a TLS-terminating proxy serves the app; requests arriving over TLS
    # directly get Secure cookies anyway.
    web_cookie_secure: bool = False
    # The resident simulator (/simulator and its WeChat API stand-in) is a development
    # tool, served (to logged-in admins only) when no real WeChat app secret is
    # configured, or when SIMULATOR_ENABLED switches it on explicitly.
    simulator_enabled: bool = True
    # Safe mode (AES key configured) refuses plaintext messages unless the
    # account is in WeChat's compatible mode (明文/密文兼容), WECHAT_COMPAT_MODE.
    wechat_compat_mode: bool = False
    # Retention (bot.privacy.retention): the conversation log, residents' notices
    # and finished tickets' photos older than this go, finished tickets are
    # anonymised; the escalation task purges every RETENTION_PURGE_INTERVAL_SECONDS
    # (0: never; `python -m bot privacy purge` by hand).
    retention_days: int = 180
    retention_purge_interval_seconds: float = 3600.0
    # Rasa's HTTP API (--enable-api) answers only requests carrying this token
    # (`?token=`); the web app needs it to hot-swap models (PUT /model). `make run`
    # exports it to every process, generating a development token when unset
    # (var/rasa-auth-token, read by `python -m bot nlu ...` as a fallback).
    rasa_auth_token: str | None = None
    # Retraining (bot/training): where model files and their JSON sidecars live,
    # where the deployment history, training jobs and the training lock live, and
    # the held-out messages (never trained on) that every model is scored on.
    models_dir: Path = PROJECT_ROOT / "models"
    model_registry_dir: Path = VAR_DIR / "models"
    nlu_holdout_glob: str = "tests/data/holdout_*.yml"
    # Review inbox (bot/review): the NLU data folder reviewed examples are
    # exported into (data/nlu/reviewed.yml), and how often the web app copies
    # new messages of the conversation log into the inbox (0: only when the
    # inbox page is opened).
    nlu_data_dir: Path = PROJECT_ROOT / "data" / "nlu"
    review_ingest_interval_seconds: float = 10.0
    # The Rasa server's endpoints file (endpoints.scale.yml: Redis lock store for
    # several Rasa servers) and the Redis it names.
    rasa_endpoints: str = "endpoints.yml"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    # Shared state of several processes (bot/coordination): WeChat exchanges, login
    # throttling, upload previews, the WeChat access token, the training lock.
    # Unset: kept in each process (one process of each kind, `make run`). When set,
    # REDIS_HOST/PORT/DB default to it, so Rasa's lock store uses the same Redis.
    redis_url: str | None = None
    # `make run-scale`: how many Rasa servers, action servers and web apps run
    # behind HAProxy (on the ports above RASA_PORT, ACTIONS_PORT and WEB_PORT).
    scale_rasa_servers: int = 2
    scale_action_servers: int = 2
    scale_web_apps: int = 2
    # Photos (bot.tickets.photos): the local folder that keeps them (shared by the
    # action server, which downloads residents' pictures from WeChat, and the web
    # app, which shows them) and the largest picture accepted, in bytes (WeChat's
    # own limit for an image message is 10 MB).
    photo_dir: Path = VAR_DIR / "photos"
    photo_max_bytes: int = 10 * 1024 * 1024
    # News about a resident's ticket outside WeChat's 48-hour window goes as a
    # template message (service accounts): the template's id (unset: the news waits
    # for the resident's next message), which of its fields get which of our values
    # (`field=value` pairs; values: category, number, status, note, time, address),
    # and the page it links to (WEB_BASE_URL + this path; {number} is the ticket).
    wechat_template_ticket_update: str | None = None
    wechat_template_fields: str = (
        "thing1=category,character_string2=number,phrase3=status,thing4=note,time5=time"
    )
    wechat_template_link: str = "/me?ticket={number}"
    # The service guide (bot.guide): one YAML file per community, read by the action
    # server and written by the admin console (so both must see the same folder).
    guide_dir: Path = PROJECT_ROOT / "data" / "guides"
    # "My reports" (/me): WeChat's web authorisation page the resident is sent to
    # (the code it returns is exchanged at WECHAT_API_BASE/sns/oauth2/access_token),
    # and the Official Account's menu file (`python -m bot wechat-menu`).
    wechat_oauth_authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    wechat_menu_path: Path = PROJECT_ROOT / "data" / "wechat_menu.yml"
    # Open311 discovery (/open311/discovery.json): whom other city systems
    # contact about the API (empty: the administrators of this service).
    open311_contact: str = ""

    @property
    def wechat_safe_mode(self) -> bool:
        return bool(self.wechat_appid and self.wechat_aes_key)

    @property
    def real_wechat_secret(self) -> bool:
        """Is a real WeChat app secret configured (residents' WeChat reachable)?"""
        return has_real_wechat_secret(self.wechat_app_secret)

    @property
    def mode(self) -> str:
        """ "production" with a real WeChat app secret, else "development"."""
        return "production" if self.real_wechat_secret else "development"

    @property
    def public_web_url(self) -> str:
        """Base URL of the web app as workers' phones reach it (no trailing slash)."""
        return self.web_base_url.rstrip("/") or f"http://127.0.0.1:{self.web_port}"


def _var_secret(path: Path, nbytes: int, create: bool = True) -> str | None:
    """A development secret kept in var/ (never committed): read, or generated once
    (readable by this user only) when `create`; every process of one installation
    agrees on it, whichever made it first."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        if not create:
            return None
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(nbytes)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(secret)
        path.chmod(0o600)
    except FileExistsError:  # another process was first
        return path.read_text(encoding="utf-8").strip()
    return secret


def _development_secret() -> str:
    """The secret signing web sessions when WEB_SECRET_KEY is unset (sessions then
    survive restarts)."""
    return _var_secret(VAR_DIR / "web-secret", 32) or ""


DEV_RASA_TOKEN_FILE = VAR_DIR / "rasa-auth-token"


def development_rasa_token(create: bool = False) -> str | None:
    """The development token of Rasa's HTTP API.

    `create=True` (the launcher) generates it on first use, so that Rasa's model
    API is never served without a token; the CLI only reads it (a Rasa server
    started by `make run` in another shell).
    """
    return _var_secret(DEV_RASA_TOKEN_FILE, 24, create)


def load_settings() -> Settings:
    """Read the settings from the environment (uncached; see `get_settings`)."""
    rasa_port = _int_env("RASA_PORT", 5005)
    database_url = resolve_sqlite_url(_env("DATABASE_URL", "sqlite:///var/neighbourhood.db") or "")
    app_secret = _env("WECHAT_APP_SECRET")
    return Settings(
        database_url=database_url,
        tracker_database_url=resolve_sqlite_url(
            _env("TRACKER_DATABASE_URL", default_tracker_url(database_url)) or ""
        ),
        rasa_port=rasa_port,
        actions_port=_int_env("ACTIONS_PORT", 5055),
        web_port=_int_env("WEB_PORT", 8080),
        rasa_url=_env("RASA_URL", f"http://127.0.0.1:{rasa_port}") or "",
        wechat_token=_env("WECHAT_TOKEN", DEV_WECHAT_TOKEN) or DEV_WECHAT_TOKEN,
        wechat_appid=_env("WECHAT_APPID"),
        wechat_aes_key=_env("WECHAT_AES_KEY"),
        wechat_app_secret=app_secret,
        wechat_api_base=(_env("WECHAT_API_BASE", "https://api.weixin.qq.com") or "").rstrip("/"),
        wecom_api_base=(_env("WECOM_API_BASE", "https://qyapi.weixin.qq.com") or "").rstrip("/"),
        admin_password=_env("ADMIN_PASSWORD"),
        taxonomy_path=Path(_env("TAXONOMY_PATH", str(PROJECT_ROOT / "data" / "taxonomy.yml"))),
        grid_directory_path=Path(
            _env("GRID_DIRECTORY", str(PROJECT_ROOT / "data" / "grids" / "jinan-demo.yml"))
        ),
        timezone=_env("TZ_NAME", "Asia/Shanghai") or "Asia/Shanghai",
        escalation_interval_seconds=_int_env("ESCALATION_INTERVAL_SECONDS", 300),
        web_host=_env("WEB_HOST", "127.0.0.1") or "127.0.0.1",
        web_secret_key=_env("WEB_SECRET_KEY") or _development_secret(),
        wechat_reply_deadline_seconds=float(_env("WECHAT_REPLY_DEADLINE_SECONDS", "4.0") or 4.0),
        wechat_aes_key_previous=_env("WECHAT_AES_KEY_PREVIOUS"),
        web_base_url=(_env("WEB_BASE_URL", "") or "").rstrip("/"),
        notify_interval_seconds=float(_env("NOTIFY_INTERVAL_SECONDS", "2.0") or 2.0),
        # development tools: on by default only while no real secret is configured
        simulator_enabled=_bool_env("SIMULATOR_ENABLED", not has_real_wechat_secret(app_secret)),
        wechat_compat_mode=_bool_env("WECHAT_COMPAT_MODE", False),
        retention_days=_int_env("RETENTION_DAYS", 180),
        retention_purge_interval_seconds=float(
            _env("RETENTION_PURGE_INTERVAL_SECONDS", "3600") or 3600
        ),
        web_cookie_secure=_bool_env("WEB_COOKIE_SECURE", False),
        rasa_auth_token=_env("RASA_AUTH_TOKEN"),
        models_dir=Path(_env("MODELS_DIR", str(PROJECT_ROOT / "models")) or ""),
        model_registry_dir=Path(
            _env("MODEL_REGISTRY_DIR", str(VAR_DIR / "models")) or str(VAR_DIR / "models")
        ),
        nlu_holdout_glob=_env("NLU_HOLDOUT_GLOB", "tests/data/holdout_*.yml") or "",
        nlu_data_dir=Path(_env("NLU_DATA_DIR") or PROJECT_ROOT / "data" / "nlu"),
        review_ingest_interval_seconds=float(_env("REVIEW_INGEST_INTERVAL_SECONDS", "10") or 10),
        rasa_endpoints=_env("RASA_ENDPOINTS", "endpoints.yml") or "endpoints.yml",
        **_redis_settings(_env("REDIS_URL")),
        scale_rasa_servers=_int_env("SCALE_RASA", 2),
        scale_action_servers=_int_env("SCALE_ACTIONS", 2),
        scale_web_apps=_int_env("SCALE_WEB", 2),
        photo_dir=Path(_env("PHOTO_DIR") or VAR_DIR / "photos"),
        photo_max_bytes=_int_env("PHOTO_MAX_BYTES", 10 * 1024 * 1024),
        wechat_template_ticket_update=_env("WECHAT_TEMPLATE_TICKET_UPDATE"),
        wechat_template_fields=_env(
            "WECHAT_TEMPLATE_FIELDS",
            "thing1=category,character_string2=number,phrase3=status,thing4=note,time5=time",
        )
        or "",
        wechat_template_link=_env("WECHAT_TEMPLATE_LINK", "/me?ticket={number}") or "",
        guide_dir=Path(_env("GUIDE_DIR") or PROJECT_ROOT / "data" / "guides"),
        wechat_oauth_authorize_url=_env(
            "WECHAT_OAUTH_AUTHORIZE_URL", "https://open.weixin.qq.com/connect/oauth2/authorize"
        )
        or "",
        wechat_menu_path=Path(
            _env("WECHAT_MENU", str(PROJECT_ROOT / "data" / "wechat_menu.yml")) or ""
        ),
        open311_contact=_env("OPEN311_CONTACT", "") or "",
    )


def _redis_settings(url: str | None) -> dict[str, object]:
    """REDIS_URL and the lock store's REDIS_HOST/PORT/DB (defaulting to REDIS_URL's)."""
    from urllib.parse import urlparse

    parsed = urlparse(url) if url else None
    host = (parsed.hostname if parsed else None) or "127.0.0.1"
    port = (parsed.port if parsed else None) or 6379
    db = ((parsed.path or "").lstrip("/") if parsed else "") or "0"
    return {
        "redis_url": url or None,
        "redis_host": _env("REDIS_HOST", host) or host,
        "redis_port": _int_env("REDIS_PORT", port),
        "redis_db": _int_env("REDIS_DB", int(db) if db.isdigit() else 0),
    }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return load_settings()
