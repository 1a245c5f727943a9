"""Fixtures of the training tests: a registry in a temporary folder, a fake Rasa
server serving a fake "current" model, and fake trainer/evaluator commands
(the admin's model pages, tests/web/admin/test_models_pages.py, use them too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.training.jobs import JobOptions
from bot.training.registry import Registry
from tests.training.fakes import FakeRasa, evaluator_command, trainer_command, write_fake_model

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
