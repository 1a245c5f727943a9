"""Every URL of the web app, in one place."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.web.views import health

STATIC_DIR = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_static("/static/", STATIC_DIR, name="static")
