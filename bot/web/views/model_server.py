"""The model server: every Rasa server pulls the model to run from here.

endpoints.scale.yml names this URL (`models: url, token, wait_time_between_pulls`);
Rasa sends the ETag it holds in If-None-Match and gets 304 until another model is
deployed, then the new file. A deploy (bot.training.deploy) so reaches every Rasa
server within one pull interval, not only the one `PUT /model` reached.
"""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web

from bot.training.deploy import model_to_serve
from bot.web.keys import SETTINGS


async def current_model(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    # The same token as Rasa's HTTP API: the model is the deployment's, not public.
    expected = settings.rasa_auth_token or ""
    given = request.query.get("token", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return web.json_response({"error": "token required"}, status=403)
    found = await asyncio.to_thread(model_to_serve, settings)
    if found is None:
        return web.json_response({"error": "no model trained or deployed"}, status=404)
    name, path = found
    etag = f'"{name}"'
    if request.headers.get("If-None-Match") in (etag, name):
        return web.Response(status=304, headers={"ETag": etag})
    return web.FileResponse(
        path,
        headers={
            "ETag": etag,
            "filename": path.name,  # Rasa saves the pulled model under this name
            "Content-Type": "application/gzip",
        },
    )
