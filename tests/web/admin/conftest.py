"""Fixtures of the admin console tests: the web app's (tests/web/conftest.py, found
as the parent folder's); for the model pages, the training tests' fake Rasa and
registry; for the review inbox's keyboard, the browser's."""

from __future__ import annotations

from tests.browser.conftest import (  # noqa: F401  (fixtures, found by name)
    browser,
    loop_thread,
    screenshots,
)
from tests.training.conftest import (  # noqa: F401  (fixtures, found by name)
    current_model_file,
    fake_rasa,
    models_dir,
    registry,
    training_settings,
)
