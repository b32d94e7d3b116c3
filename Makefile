# Riff. `make run` and `make test` work on a fresh machine: they create .venv and, when
# DATABASE_URL / REDIS_URL are unset, start an embedded PostgreSQL and Redis under .data/.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test lint format check schema bench bench-feed clean

# Quiet pip, but never silent: each step says what it is doing and roughly how long it takes.
$(STAMP): pyproject.toml
	@echo "riff: installing into $(VENV) (first time: about 2 minutes; next times: seconds)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "riff: [1/3] pip"
	@$(PIP) install -q --upgrade pip
	@# The CPU wheel first: anything that pulls torch later must not fetch a CUDA build.
	@echo "riff: [2/3] torch 2.13.0, CPU build (the largest download)"
	@$(PIP) install -q torch==2.13.0
	@echo "riff: [3/3] Riff and its dependencies (web, worker, embedded PostgreSQL/Redis, dev)"
	@$(PIP) install -q -e '.[worker,embedded,dev]'
	@touch $(STAMP)
	@echo "riff: installed"

install: $(STAMP)

run: install
	$(PY) -m config.devserver run

test: install
	$(PY) -m config.devserver exec -- $(PY) -m pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: install
	RIFF_DEV=1 $(PY) -m config.devserver exec -- sh -c '$(PY) manage.py makemigrations --check --dry-run && $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null'

schema: install
	RIFF_DEV=1 $(PY) manage.py spectacular --validate --file docs/openapi.yaml

# Figures land in docs/bench-*.json and are quoted in the README and docs/.
bench: install
	RIFF_DEV=1 $(PY) -m config.devserver exec -- sh -c '$(PY) manage.py migrate -v 0 && \
	  $(PY) manage.py bench_generation --out docs/bench-generation.json && \
	  $(PY) manage.py bench_engine --out docs/bench-engine.json && \
	  $(PY) manage.py bench_revenue --out docs/bench-revenue.json'
	$(MAKE) bench-feed

# The feed benchmark seeds synthetic data once (users named seed_*; `seed_feed --reset` replaces
# it) and measures the feed against a real uvicorn server. Size: BENCH_USERS/POSTS/EVENTS.
BENCH_USERS ?= 100000
BENCH_POSTS ?= 1000000
BENCH_EVENTS ?= 10000000
bench-feed: install
	RIFF_DEV=1 $(PY) -m config.devserver exec -- sh -c '$(PY) manage.py migrate -v 0 && \
	  $(PY) manage.py seed_feed --if-missing --users $(BENCH_USERS) --posts $(BENCH_POSTS) \
	    --events $(BENCH_EVENTS) && \
	  $(PY) manage.py bench_feed --out docs/bench-feed.json'

clean:
	rm -rf $(VENV) .data
