"""Open311 GeoReport v2 handlers: read the request, call bot.open311's resource, answer JSON.

Every failure answers the specification's error list (`[{"code", "description"}]`)
with 400, 403 or 404, never a bare 500: the specification asks for 400 on
"any failure during processing" (e.g. the database is down).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.open311 import answers, parsing, requests, submit
from bot.open311 import services as open311_services
from bot.open311.mapping import local_zone
from bot.store.models import utcnow
from bot.taxonomy import get_taxonomy
from bot.web.db import run_db
from bot.web.keys import SETTINGS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The paths of routes.py's "# Open311" block with their methods, for the
# error answers of the catch-all route.
PATHS = {
    "services.json": ("GET",),
    "requests.json": ("GET", "POST"),
}


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=answers.dumps(body),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", **(headers or {})},
    )


def _answers_errors(handler: Handler) -> Handler:
    """Turn every failure into the specification's error list."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except answers.Open311Error as exc:
            return reply(exc.errors, exc.status)
        except web.HTTPRequestEntityTooLarge:
            return reply([answers.error(400, "request body too large")], 400)
        except Exception:
            log.exception("Open311 %s %s failed", request.method, request.path)
            return reply(
                [
                    answers.error(
                        400, "service error: the request could not be processed, try again later"
                    )
                ],
                400,
            )

    return wrapped


def _zone(request: web.Request) -> ZoneInfo:
    return local_zone(request.app[SETTINGS].timezone)


@_answers_errors
async def services(request: web.Request) -> web.Response:
    return reply(open311_services.services(get_taxonomy()))


@_answers_errors
async def service_definition(request: web.Request) -> web.Response:
    return reply(open311_services.service_definition(request.match_info["code"], get_taxonomy()))


def _read_key(request: web.Request) -> str | None:
    """The key of a GET (`api_key` in the query string, or the X-Api-Key header)."""
    return request.query.get("api_key") or request.headers.get("X-Api-Key") or None


@_answers_errors
async def list_requests(request: web.Request) -> web.Response:
    zone = _zone(request)
    now = utcnow()
    arguments = [(k, v) for k, v in request.query.items() if k != "api_key"]
    query = parsing.parse_query(arguments, now=now, zone=zone)
    taxonomy = get_taxonomy()
    token = _read_key(request)

    def read(session):
        reader = requests.reader_for(session, token, now)
        return requests.find_requests(
            session, query, zone=zone, taxonomy=taxonomy, reader=reader, now=now
        )

    # Without a key nothing is written (a key's use and a full read are).
    found = await run_db(request.app, read, readonly=token is None)
    return reply(found)


@_answers_errors
async def one_request(request: web.Request) -> web.Response:
    zone = _zone(request)
    now = utcnow()
    request_id = request.match_info["id"]
    taxonomy = get_taxonomy()
    token = _read_key(request)

    def read(session):
        reader = requests.reader_for(session, token, now)
        return requests.get_request(
            session, request_id, zone=zone, taxonomy=taxonomy, reader=reader, now=now
        )

    found = await run_db(request.app, read, readonly=token is None)
    return reply(found)


async def _fields(request: web.Request) -> dict[str, str]:
    """The POST's fields: form-encoded (the specification) or a JSON object."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise answers.Open311Error.of(400, "the body is not valid JSON") from None
        fields = parsing.json_fields(body)
    else:
        try:
            form = await request.post()
        except UnicodeDecodeError:
            raise answers.Open311Error.of(400, "the body is not valid UTF-8") from None
        fields = parsing.form_fields(form.items())
    # The key may also come in the query string (as some clients send it).
    if "api_key" not in fields and "api_key" in request.query:
        fields["api_key"] = request.query["api_key"]
    idempotency = request.headers.get("Idempotency-Key")
    if idempotency and "idempotency_key" not in fields:
        fields["idempotency_key"] = idempotency
    return fields


@_answers_errors
async def create_request(request: web.Request) -> web.Response:
    fields = await _fields(request)
    if not (fields.get("api_key") or "").strip():
        # No database work for clients without a key.
        return reply([answers.error(403, "api_key was not provided")], 403)
    zone = _zone(request)
    taxonomy = get_taxonomy()
    outcome = await run_db(
        request.app,
        lambda session: submit.submit_request(session, fields, zone=zone, taxonomy=taxonomy),
    )
    return reply(outcome.body, outcome.status)


@_answers_errors
async def not_found(request: web.Request) -> web.Response:
    """Anything else under /open311/v2/: 404, or 405 for a known path."""
    tail = request.match_info.get("tail", "")
    allowed = PATHS.get(tail)
    if allowed is None and tail.startswith("services/") and tail.endswith(".json"):
        allowed = ("GET",)
    if allowed is None and tail.startswith("requests/") and tail.endswith(".json"):
        allowed = ("GET",)
    if allowed is not None:
        return reply(
            [answers.error(405, f"{request.method} is not allowed here; use {', '.join(allowed)}")],
            405,
            headers={"Allow": ", ".join(allowed)},
        )
    return reply(
        [answers.error(404, f"no such Open311 resource: {request.path[:100]} (JSON only)")], 404
    )
