"""Every URL of the web app, in one place."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.web.keys import SETTINGS
from bot.web.views import auth as auth_views
from bot.web.views import health
from bot.web.views import open311 as open311_views
from bot.web.views import simulator as simulator_views
from bot.web.views import worker as worker_views

STATIC_DIR = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_static("/static/", STATIC_DIR, name="static")

    # resident simulator: a development tool (WeChat-like chat against the real
    # webhook, plus a stand-in of WeChat's customer-service API); production
    # deployments switch it off with SIMULATOR_ENABLED=false.
    if app[SETTINGS].simulator_enabled:
        simulator_views.install(app)
        app.router.add_get("/simulator", simulator_views.page, name="simulator")
        app.router.add_post("/simulator/api/send", simulator_views.send)
        app.router.add_get("/simulator/api/inbox", simulator_views.inbox)
        app.router.add_get("/simulator/api/tickets", simulator_views.tickets)
        app.router.add_get("/simulator/wechat-api/cgi-bin/token", simulator_views.wechat_token)
        app.router.add_post(
            "/simulator/wechat-api/cgi-bin/message/custom/send",
            simulator_views.wechat_custom_send,
        )

    # worker pages: login, inbox, ticket page and its actions (bot/web/views/worker.py;
    # sessions and CSRF in bot/web/auth.py, set up by create_app)
    worker_views.setup(app)
    app.router.add_get("/login", auth_views.login_form, name="login")
    app.router.add_post("/login", auth_views.login_submit)
    app.router.add_post("/logout", auth_views.logout, name="logout")
    app.router.add_get("/", worker_views.inbox_page, name="inbox")
    app.router.add_get("/tickets/{number}", worker_views.ticket_page, name="ticket")
    app.router.add_post(
        "/tickets/{number}/{action}", worker_views.ticket_action, name="ticket_action"
    )

    # Open311 GeoReport v2 (JSON); see bot/open311.py for the choices made.
    # The catch-all comes last: other paths under /open311/v2/ answer the
    # specification's error list (404, or 405 for a known path).
    app.router.add_get("/open311/v2/services.json", open311_views.services, name="open311_services")
    app.router.add_get(
        "/open311/v2/services/{code}.json",
        open311_views.service_definition,
        name="open311_service_definition",
    )
    app.router.add_get(
        "/open311/v2/requests.json", open311_views.list_requests, name="open311_requests"
    )
    app.router.add_post("/open311/v2/requests.json", open311_views.create_request)
    app.router.add_get(
        "/open311/v2/requests/{id}.json", open311_views.one_request, name="open311_request"
    )
    app.router.add_route("*", "/open311/v2/{tail:.*}", open311_views.not_found)
