"""Fixtures of the review inbox tests: those of the web app tests (tests/web/conftest.py:
a demo database with one account per role, the app, clients, a conversation log
`tracker`, a copy of the NLU data `nlu_dir`, `copy_log()`)."""

from __future__ import annotations

from tests.web.conftest import (  # noqa: F401  (fixtures, found by name)
    admin_client,
    anon_client,
    client_factory,
    copy_log,
    nlu_dir,
    staff_client,
    tracker,
    tracker_path,
    web_app,
    web_db_url,
    web_engine,
    web_server,
    web_settings,
    web_template_db,
    worker_client,
)
