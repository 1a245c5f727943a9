"""Every URL of the web app, in one place."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.web import resident_auth
from bot.web.keys import SETTINGS
from bot.web.views import admin as admin_views
from bot.web.views import admin_access as access_views
from bot.web.views import admin_directory as directory_views
from bot.web.views import admin_guides as guide_views
from bot.web.views import admin_people as people_views
from bot.web.views import auth as auth_views
from bot.web.views import consultations as consultation_views
from bot.web.views import health, model_server
from bot.web.views import mine as mine_views
from bot.web.views import models as models_views
from bot.web.views import open311 as open311_views
from bot.web.views import review as review_views
from bot.web.views import simulator as simulator_views
from bot.web.views import worker as worker_views

STATIC_DIR = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_static("/static/", STATIC_DIR, name="static")
    # the model server of the Rasa servers (endpoints.scale.yml), with RASA_AUTH_TOKEN
    app.router.add_get(
        "/model-server/model.tar.gz", model_server.current_model, name="model_server"
    )

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
        app.router.add_get(
            "/simulator/wechat-api/cgi-bin/media/get", simulator_views.wechat_media_get
        )

    # worker pages: login, inbox, ticket page and its actions (bot/web/views/worker.py;
    # sessions and CSRF in bot/web/auth.py, set up by create_app)
    worker_views.setup(app)
    app.router.add_get("/login", auth_views.login_form, name="login")
    app.router.add_post("/login", auth_views.login_submit)
    app.router.add_post("/logout", auth_views.logout, name="logout")
    app.router.add_get("/", worker_views.inbox_page, name="inbox")
    app.router.add_get("/tickets/{number}", worker_views.ticket_page, name="ticket")
    # photos of a ticket: one file, a worker's upload (before the actions' catch-all)
    app.router.add_get(
        r"/tickets/{number}/photos/{photo_id:\d+}", worker_views.ticket_photo, name="ticket_photo"
    )
    app.router.add_post(
        "/tickets/{number}/photos", worker_views.ticket_photo_upload, name="ticket_photo_upload"
    )
    app.router.add_post(
        "/tickets/{number}/{action}", worker_views.ticket_action, name="ticket_action"
    )

    # residents' "my reports" page, opened from the Official Account's menu: WeChat
    # web authorisation (bot/web/resident_auth.py), the resident's tickets and their
    # buttons (bot/web/views/mine.py, bot/tickets/mine.py)
    resident_auth.setup(app)
    app.router.add_get("/me", mine_views.my_reports, name="my_reports")
    app.router.add_get("/me/oauth", mine_views.oauth_callback, name="my_reports_oauth")
    app.router.add_get(
        r"/me/tickets/{number}/photos/{photo_id:\d{1,9}}",
        mine_views.ticket_photo,
        name="my_reports_photo",
    )
    app.router.add_post(
        "/me/tickets/{number}/{action}", mine_views.ticket_action, name="my_reports_action"
    )
    app.router.add_post(
        r"/me/consultations/{id:\d{1,9}}",
        mine_views.consultation_answer,
        name="my_reports_consultation",
    )

    # consultations (协商议事): community staff turn a proposal into a question for a
    # grid or building, watch the answers, close it with a decision
    # (bot/web/views/consultations.py, bot/consultations/; community staff and admins)
    app.router.add_get("/consultations", consultation_views.list_page, name="consultations")
    app.router.add_get("/consultations/new", consultation_views.new_page, name="consultation_new")
    app.router.add_post("/consultations/new", consultation_views.create)
    app.router.add_get(
        r"/consultations/{id:\d{1,9}}", consultation_views.detail_page, name="consultation"
    )
    app.router.add_post(
        r"/consultations/{id:\d{1,9}}/close",
        consultation_views.close,
        name="consultation_close",
    )

    # admin console: dashboard, ticket CSV, grid directory, people, API keys
    # (bot/web/views/admin.py, admin_directory.py, admin_people.py; every
    # handler is admin-only: 403 for other roles, /login when logged out)
    admin_views.setup(app)
    directory_views.setup(app)
    app.router.add_get("/admin", admin_views.dashboard_page, name="admin_dashboard")
    app.router.add_get("/admin/tickets.csv", admin_views.tickets_csv, name="admin_tickets_csv")
    app.router.add_get("/admin/directory", directory_views.directory_page, name="admin_directory")
    app.router.add_post(
        "/admin/directory/preview",
        directory_views.directory_preview,
        name="admin_directory_preview",
    )
    app.router.add_post(
        "/admin/directory/apply", directory_views.directory_apply, name="admin_directory_apply"
    )
    # the service guide: one YAML file per community (bot/guide/), upload/preview/apply
    guide_views.setup(app)
    app.router.add_get("/admin/guides", guide_views.guides_page, name="admin_guides")
    app.router.add_post(
        "/admin/guides/preview", guide_views.guides_preview, name="admin_guides_preview"
    )
    app.router.add_post("/admin/guides/apply", guide_views.guides_apply, name="admin_guides_apply")
    app.router.add_get("/admin/people", people_views.people_page, name="admin_people")
    app.router.add_post("/admin/people", people_views.people_add)
    app.router.add_get(r"/admin/people/{id:\d+}", people_views.person_page, name="admin_person")
    app.router.add_post(
        r"/admin/people/{id:\d+}/role", people_views.person_role, name="admin_person_role"
    )
    app.router.add_post(
        r"/admin/people/{id:\d+}/password",
        people_views.person_password,
        name="admin_person_password",
    )
    app.router.add_post(
        r"/admin/people/{id:\d+}/active", people_views.person_active, name="admin_person_active"
    )
    app.router.add_get("/admin/keys", people_views.keys_page, name="admin_keys")
    app.router.add_post("/admin/keys", people_views.keys_create)
    app.router.add_post(
        "/admin/keys/{prefix}/revoke", people_views.keys_revoke, name="admin_keys_revoke"
    )
    # (end of admin console)

    # admin: models — retrain, compare on the held-out set, deploy (PUT /model to the
    # running Rasa server), roll back (bot/web/views/models.py, bot/training/;
    # admin-only: 403 for other roles). The .json route precedes the job page.
    models_views.setup(app)
    app.router.add_get("/admin/models", models_views.models_page, name="admin_models")
    app.router.add_post(
        "/admin/models/train", models_views.start_training, name="admin_models_train"
    )
    app.router.add_post(
        "/admin/models/rollback", models_views.rollback_model, name="admin_models_rollback"
    )
    app.router.add_get(
        r"/admin/models/jobs/{job_id:[0-9a-f-]+}.json",
        models_views.job_json,
        name="admin_model_job_json",
    )
    app.router.add_get(
        r"/admin/models/jobs/{job_id:[0-9a-f-]+}", models_views.job_page, name="admin_model_job"
    )
    app.router.add_get("/admin/models/{name}", models_views.model_page, name="admin_model")
    app.router.add_post(
        "/admin/models/{name}/deploy", models_views.deploy_model, name="admin_model_deploy"
    )
    # (end of admin: models)

    # admin: review inbox — residents' logged messages to confirm/relabel, bulk by
    # keyboard; export to data/nlu/reviewed.yml; insights (bot/web/views/review.py,
    # bot/review/; admin-only: 403 for other roles, /login when logged out)
    # admin: staff access records (bot/web/views/admin_access.py, bot/access_log.py)
    app.router.add_get("/admin/access", access_views.access_page, name="admin_access")

    review_views.setup(app)
    app.router.add_get("/admin/review", review_views.review_page, name="admin_review")
    app.router.add_post(
        "/admin/review/decide", review_views.decide_action, name="admin_review_decide"
    )
    app.router.add_post("/admin/review/undo", review_views.undo_action, name="admin_review_undo")
    app.router.add_post(
        "/admin/review/export", review_views.export_action, name="admin_review_export"
    )
    app.router.add_get("/admin/insights", review_views.insights_page, name="admin_insights")
    # (end of admin: review inbox)

    # Open311 GeoReport v2, every resource as .json and .xml, and discovery; see
    # bot/open311/__init__.py for the choices made. The catch-all comes last:
    # other paths under /open311/ answer the specification's error list (404,
    # or 405 for a known path).
    fmt = "{format:json|xml}"
    app.router.add_get(
        f"/open311/discovery.{fmt}", open311_views.discovery_document, name="open311_discovery"
    )
    app.router.add_get(
        f"/open311/v2/services.{fmt}", open311_views.services, name="open311_services"
    )
    app.router.add_get(
        "/open311/v2/services/{code:[^/]+}." + fmt,
        open311_views.service_definition,
        name="open311_service_definition",
    )
    app.router.add_get(
        f"/open311/v2/requests.{fmt}", open311_views.list_requests, name="open311_requests"
    )
    app.router.add_post(f"/open311/v2/requests.{fmt}", open311_views.create_request)
    app.router.add_get(
        "/open311/v2/requests/{id:[^/]+}." + fmt, open311_views.one_request, name="open311_request"
    )
    # mySociety's request updates (what FixMyStreet reads and posts)
    app.router.add_get(
        f"/open311/v2/servicerequestupdates.{fmt}",
        open311_views.list_updates,
        name="open311_updates",
    )
    app.router.add_post(f"/open311/v2/servicerequestupdates.{fmt}", open311_views.post_update)
    # the public photos that media_url points to (bot/open311/media.py)
    app.router.add_get(
        r"/open311/v2/media/{photo_id:\d{1,12}}.{extension:jpg|png|gif|webp}",
        open311_views.media_file,
        name="open311_media",
    )
    app.router.add_route("*", "/open311/{tail:.*}", open311_views.not_found)
