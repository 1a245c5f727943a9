"""Open311 GeoReport v2 handlers: read the request, call bot.open311's resource,
answer in the format the path asks for (`.json` or `.xml`, bot.open311.answers).

Every failure answers the specification's error list (`[{"code", "description"}]`,
`<errors><error>…`) in the requested format with 400, 403 or 404, never a bare
500: the specification asks for 400 on "any failure during processing" (e.g.
the database is down).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from xml.etree.ElementTree import ParseError
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
from aiohttp import web
from defusedxml import DefusedXmlException

from bot.open311 import answers, discovery, media, parsing, requests, submit, updates
from bot.open311 import services as open311_services
from bot.open311.mapping import local_zone
from bot.store.models import utcnow
from bot.taxonomy import get_taxonomy
from bot.tickets.photos import PhotoStore
from bot.web.db import run_db
from bot.web.keys import SETTINGS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The resources of routes.py's "# Open311" block (path without the format
# extension) with their methods, for the error answers of the catch-all route.
PATHS = {
    "discovery": ("GET",),
    "v2/services": ("GET",),
    "v2/requests": ("GET", "POST"),
    "v2/servicerequestupdates": ("GET", "POST"),
}
ITEM_PATHS = {"v2/services/": ("GET",), "v2/requests/": ("GET",)}


def requested_format(request: web.Request) -> str:
    """ "xml" or "json": the route's `{format}`, else the path's extension
    (an unknown one is answered in JSON)."""
    fmt = request.match_info.get("format")
    if fmt in answers.FORMATS:
        return fmt
    return "xml" if request.path.endswith(".xml") else "json"


def reply(
    request: web.Request, answer: answers.Answer, headers: dict[str, str] | None = None
) -> web.Response:
    body, content_type = answers.render(answer, requested_format(request))
    return web.Response(
        body=body,
        status=answer.status,
        content_type=content_type,
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
            return reply(request, exc.answer())
        except web.HTTPRequestEntityTooLarge:
            return reply(request, answers.errors(400, "request body too large"))
        except Exception:
            log.exception("Open311 %s %s failed", request.method, request.path)
            return reply(
                request,
                answers.errors(
                    400, "service error: the request could not be processed, try again later"
                ),
            )

    return wrapped


def _zone(request: web.Request) -> ZoneInfo:
    return local_zone(request.app[SETTINGS].timezone)


@_answers_errors
async def discovery_document(request: web.Request) -> web.Response:
    document = discovery.discovery(request.app[SETTINGS])
    return reply(request, answers.Answer(document, answers.DISCOVERY))


@_answers_errors
async def services(request: web.Request) -> web.Response:
    found = open311_services.services(get_taxonomy())
    return reply(request, answers.Answer(found, answers.SERVICES))


@_answers_errors
async def service_definition(request: web.Request) -> web.Response:
    definition = open311_services.service_definition(request.match_info["code"], get_taxonomy())
    return reply(request, answers.Answer(definition, answers.SERVICE_DEFINITION))


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
    return reply(request, answers.Answer(found, answers.REQUESTS))


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
    return reply(request, answers.Answer(found, answers.REQUESTS))


def _xml_fields(raw: bytes) -> dict[str, Any]:
    """An XML body as fields (extension): the root's child elements, by name
    (`<service_request><service_code>HEATING</service_code>…`)."""
    try:
        root = SafeET.fromstring(raw)
    except (ParseError, DefusedXmlException, ValueError):
        raise answers.Open311Error.of(400, "the body is not well-formed XML") from None
    fields: dict[str, Any] = {}
    for child in root:
        if len(child):
            raise answers.Open311Error.of(400, f"{str(child.tag)[:50]} must be text, not elements")
        fields.setdefault(str(child.tag), (child.text or "").strip())
    return fields


async def _fields(request: web.Request) -> dict[str, str]:
    """The POST's fields: form-encoded (the specification), a JSON object or an
    XML document (extensions)."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise answers.Open311Error.of(400, "the body is not valid JSON") from None
        fields = parsing.json_fields(body)
    elif request.content_type in ("text/xml", "application/xml"):
        fields = parsing.json_fields(_xml_fields(await request.read()))
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


async def _write(request: web.Request, operation: Callable[..., answers.Answer]) -> web.Response:
    """A keyed write (a new request, an update): `operation(session, fields, zone=,
    taxonomy=)` answers it in one transaction."""
    fields = await _fields(request)
    if not (fields.get("api_key") or "").strip():
        # No database work for clients without a key.
        return reply(request, answers.errors(403, "api_key was not provided"))
    zone = _zone(request)
    taxonomy = get_taxonomy()
    answer = await run_db(
        request.app,
        lambda session: operation(session, fields, zone=zone, taxonomy=taxonomy),
    )
    return reply(request, answer)


@_answers_errors
async def create_request(request: web.Request) -> web.Response:
    return await _write(request, submit.submit_request)


@_answers_errors
async def list_updates(request: web.Request) -> web.Response:
    zone = _zone(request)
    query = updates.parse_update_query(request.query.items(), now=utcnow(), zone=zone)
    taxonomy = get_taxonomy()
    found = await run_db(
        request.app,
        lambda session: updates.find_updates(session, query, zone=zone, taxonomy=taxonomy),
        readonly=True,
    )
    return reply(request, answers.Answer(found, answers.UPDATES))


@_answers_errors
async def post_update(request: web.Request) -> web.Response:
    return await _write(request, updates.post_update)


@_answers_errors
async def media_file(request: web.Request) -> web.StreamResponse:
    """A public photo (bot.open311.media); 404 in JSON for anything else."""
    photo_id = int(request.match_info["photo_id"])
    extension = request.match_info["extension"]
    store = PhotoStore(request.app[SETTINGS].photo_dir)
    taxonomy = get_taxonomy()
    found = await run_db(
        request.app,
        lambda session: media.public_photo_file(session, photo_id, extension, store, taxonomy),
        readonly=True,
    )
    if found is None:
        return reply(request, answers.errors(404, f"no such Open311 media: {request.path[:100]}"))
    return web.FileResponse(
        found.path,
        headers={
            "Content-Type": found.content_type,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "public, max-age=86400",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@_answers_errors
async def not_found(request: web.Request) -> web.Response:
    """Anything else under /open311/: 404, or 405 for a known path and format."""
    tail = request.match_info.get("tail", "")
    resource, dot, extension = tail.rpartition(".")
    allowed = None
    if dot and extension in answers.FORMATS:
        allowed = PATHS.get(resource)
        for prefix, methods in ITEM_PATHS.items():
            rest = resource[len(prefix) :]
            if allowed is None and resource.startswith(prefix) and rest and "/" not in rest:
                allowed = methods
    if allowed is not None:
        return reply(
            request,
            answers.errors(405, f"{request.method} is not allowed here; use {', '.join(allowed)}"),
            headers={"Allow": ", ".join(allowed)},
        )
    return reply(
        request,
        answers.errors(
            404, f"no such Open311 resource: {request.path[:100]} (formats: .json, .xml)"
        ),
    )
