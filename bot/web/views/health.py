from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from bot.web.db import run_db


async def healthz(request: web.Request) -> web.Response:
    """Liveness and readiness: answers only when the database answers."""
    try:
        await run_db(request.app, lambda s: s.execute(text("SELECT 1")).scalar_one(), readonly=True)
    except Exception as error:  # any failure means: not ready
        return web.json_response({"status": "error", "detail": type(error).__name__}, status=503)
    return web.json_response({"status": "ok"})
