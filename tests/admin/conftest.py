"""Fixtures of the admin console tests: those of the web app tests (tests/web),
reused as they are: a demo database with one account per role, the app on a
test server, logged-in clients."""

from __future__ import annotations

from tests.web.conftest import (  # noqa: F401  (fixtures, found by name)
    admin_client,
    anon_client,
    client_factory,
    other_worker_client,
    staff_client,
    web_app,
    web_db_url,
    web_engine,
    web_server,
    web_settings,
    web_template_db,
    worker_client,
)
