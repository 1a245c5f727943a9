# The two commands that matter: `make run` and `make test` (see README.md).
# Everything else is a step they use, or a tool for developers.

PYTHON_VERSION := 3.10
PYTHON ?= $(shell command -v python$(PYTHON_VERSION) 2>/dev/null || echo python$(PYTHON_VERSION))
VENV := .venv
PY := $(VENV)/bin/python
RASA := $(PY) -m rasa
STAMP := $(VENV)/.installed

# run-scale: several Rasa, action and web processes behind HAProxy (bot/scale.py)
.PHONY: run run-scale haproxy-deps test install train shell eval bench-nlu validate lint format unit stories clean browser-deps

run: $(STAMP)
	$(PY) -m bot.launcher run

# Needs REDIS_URL and a PostgreSQL DATABASE_URL; SCALE_RASA/SCALE_ACTIONS/SCALE_WEB (2 each).
run-scale: $(STAMP) haproxy-deps
	$(PY) -m bot.launcher run-scale

# install: create .venv with Python 3.10 and install the pinned dependencies
$(STAMP): pyproject.toml
	@$(PYTHON) --version >/dev/null 2>&1 || { echo "Python $(PYTHON_VERSION) is needed (pyenv install $(PYTHON_VERSION), or: uv python install $(PYTHON_VERSION))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<25" wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) -m bot.launcher train

shell: $(STAMP)
	$(PY) -m bot.launcher shell

validate: $(STAMP)
	$(RASA) data validate --fail-on-warnings --domain domain.yml --data data/nlu data/rules data/stories --config config.yml

unit: $(STAMP)
	$(PY) -m pytest -q

stories: $(STAMP)
	$(PY) -m bot.launcher test-stories

test: $(STAMP) browser-deps
	$(PY) -m bot.launcher train
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory validate
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory stories

eval: $(STAMP)
	$(PY) -m bot.launcher eval

bench-nlu: $(STAMP)
	$(PY) benchmarks/nlu_benchmark.py

lint: $(STAMP)
	$(PY) -m ruff check bot actions tests benchmarks
	$(PY) -m ruff format --check bot actions tests benchmarks

format: $(STAMP)
	$(PY) -m ruff format bot actions tests benchmarks
	$(PY) -m ruff check --fix bot actions tests benchmarks

clean:
	rm -rf results .pytest_cache

# browser-deps: Debian's headless Chromium for the browser tests (tests/browser),
# driven by Playwright with executable_path=/usr/bin/chromium. Never a downloaded
# browser: do not run `playwright install`.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; \
	else \
		echo "The browser tests need Debian's chromium: as root, run"; \
		echo "  apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver"; \
		echo "(until then the browser tests are skipped)"; \
	fi

# haproxy-deps: Debian's HAProxy for `make run-scale` and the fault tests
# (tests/integration/test_faults.py; skipped without it).
haproxy-deps:
	@if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		apt-get update && apt-get install -y --no-install-recommends haproxy; \
	else \
		echo "make run-scale needs Debian's haproxy: as root, run"; \
		echo "  apt-get update && apt-get install -y --no-install-recommends haproxy"; \
		exit 1; \
	fi
