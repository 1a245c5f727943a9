"""Fixtures of the model tests: a registry in a temporary folder, a fake Rasa
server serving a fake "current" model, and fake trainer/evaluator commands.

The web pages' fixtures come from tests/web/conftest.py (a demo database with
one account per role); `web_settings` is replaced here so that the app's
registry, models and Rasa server are the temporary and fake ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from bot.settings import Settings
from bot.training.jobs import JobOptions
from bot.training.registry import Registry
from bot.web.app import create_app
from bot.web.views.models import TRAINING_OPTIONS
from tests.models.fakes import FakeRasa, evaluator_command, trainer_command, write_fake_model
from tests.web.conftest import (  # noqa: F401 - fixtures used by the page tests
    ADMIN_PASSWORD,
    NOWHERE,
    SECRET,
    admin_client,
    anon_client,
    client_factory,
    staff_client,
    web_db_url,
    web_engine,
    web_server,
    web_template_db,
    worker_client,
)

CURRENT = "model-0000000000000000"
CURRENT_QUALITY = 0.85


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def current_model_file(models_dir: Path) -> Path:
    return write_fake_model(models_dir / f"{CURRENT}.tar.gz", CURRENT_QUALITY)


@pytest.fixture
def fake_rasa(current_model_file: Path) -> Iterator[FakeRasa]:
    rasa = FakeRasa(current_model_file)
    yield rasa
    rasa.close()


@pytest.fixture
def training_settings(tmp_path: Path, models_dir: Path, fake_rasa: FakeRasa) -> Settings:
    from bot.settings import load_settings

    return replace(
        load_settings(),
        models_dir=models_dir,
        model_registry_dir=tmp_path / "var" / "models",
        rasa_url=fake_rasa.url,
        rasa_auth_token=fake_rasa.token,
    )


@pytest.fixture
def registry(training_settings: Settings) -> Registry:
    return Registry.from_settings(training_settings)


def fake_options(quality: float = 0.9, **kwargs) -> JobOptions:
    trainer = {k: kwargs.pop(k) for k in ("crash", "sleep", "epochs") if k in kwargs}
    return JobOptions(
        train_command=trainer_command(quality, **trainer),
        evaluate_command=evaluator_command(),
        **kwargs,
    )


@pytest.fixture
def web_settings(
    web_db_url: str,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    training_settings: Settings,
) -> Settings:
    return replace(
        training_settings,
        database_url=web_db_url,
        tracker_database_url=f"sqlite:///{tmp_path / 'conversations.db'}",
        web_secret_key=SECRET,
        admin_password=ADMIN_PASSWORD,
        web_cookie_secure=False,
        wecom_api_base=NOWHERE,
        wechat_api_base=NOWHERE,
    )


@pytest.fixture
def web_app(web_settings: Settings, web_engine) -> web.Application:  # noqa: F811
    """The app with fake trainer and evaluator behind "start training"."""
    app = create_app(web_settings, engine=web_engine)
    app[TRAINING_OPTIONS] = fake_options(0.9, sleep=1.0)
    return app
