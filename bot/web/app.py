"""The web app's factory: resources on cleanup_ctx, templates, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.engine import Engine

from bot.conversation_log import ConversationLog
from bot.coordination import SharedState, shared_state_for_url
from bot.notify.sender import sender_ctx
from bot.settings import Settings, get_settings
from bot.store.db import make_engine
from bot.web.auth import setup_auth
from bot.web.keys import CONVERSATION_LOG, ENGINE, HTTP, SETTINGS, SHARED_STATE
from bot.web.routes import setup_routes

TEMPLATES_DIR = Path(__file__).parent / "templates"
MAX_BODY = 1024 * 1024  # forms and Open311 posts; uploads are not taken here


def _database_ctx(engine: Engine | None):
    async def database(app: web.Application) -> AsyncIterator[None]:
        own = engine is None
        app[ENGINE] = engine or make_engine(app[SETTINGS].database_url)
        yield
        if own:
            app[ENGINE].dispose()

    return database


async def _conversation_log(app: web.Application) -> AsyncIterator[None]:
    """Rasa's conversation log, read by the ticket page and the review inbox."""
    log = ConversationLog(app[SETTINGS].tracker_database_url)
    app[CONVERSATION_LOG] = log
    yield
    log.dispose()


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    """One client session for all outgoing HTTP (WeCom robot, WeChat API, Rasa)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        app[HTTP] = session
        yield


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    shared_state: SharedState | None = None,
) -> web.Application:
    """Build the web app. `engine` lets tests share a database they prepared,
    `shared_state` the state of several simulated processes."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings or get_settings()
    app[SHARED_STATE] = shared_state or shared_state_for_url(app[SETTINGS].redis_url)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    app.cleanup_ctx.append(_database_ctx(engine))
    app.cleanup_ctx.append(_conversation_log)
    app.cleanup_ctx.append(_http_client)
    # notifications: the outbox sender runs in the background while the app does
    # (after the database and HTTP resources, so it stops before they close).
    app.cleanup_ctx.append(sender_ctx)
    setup_auth(app)  # sessions, CSRF, first admin (after the database resource)
    setup_routes(app)
    return app


def run(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    web.run_app(create_app(settings), host=settings.web_host, port=settings.web_port, print=None)
