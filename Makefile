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
	@echo "riff: [3/3] Riff and its dependencies (web, worker, diffusers, embedded PostgreSQL/Redis, dev)"
	@$(PIP) install -q -e '.[worker,diffusers,embedded,dev]'
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
	  $(PY) manage.py bench_revenue --out docs/bench-revenue.json && \
	  $(PY) manage.py bench_upscale --out docs/upscaling.json --picture docs/img/upscaling.png'
	$(MAKE) bench-feed

# The serving benchmark (issue #31, docs/bench-feed.md): for each size, a database of its own on
# DATABASE_URL's server (created when missing), migrated and seeded once (`seed_feed
# --if-missing`: users named seed_*), then `bench_feed` with wrk against a real uvicorn server;
# each size is its own label in docs/bench-feed.json. BENCH_FEED_SIZES picks sizes (200k 1m).
BENCH_FEED_SIZES ?= 200k 1m
BENCH_FEED_ARGS ?= --profile
bench-feed: install
	@command -v wrk >/dev/null || { echo "bench-feed needs wrk: apt-get install wrk"; exit 1; }
	RIFF_DEV=1 $(PY) -m config.devserver exec -- sh -c 'set -e; \
	  for size in $(BENCH_FEED_SIZES); do \
	    case $$size in \
	      200k) seed="--users 20000 --posts 200000 --events 2000000" ;; \
	      1m) seed="--users 100000 --posts 1000000 --events 10000000" ;; \
	      *) echo "unknown size $$size (200k or 1m)"; exit 1 ;; \
	    esac; \
	    url=$$($(PY) -c "import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path=sys.argv[2])))" "$$DATABASE_URL" /riff_bench_$$size); \
	    $(PY) -c "import sys; from config.devserver import ensure_database; ensure_database(sys.argv[1])" "$$url"; \
	    DATABASE_URL=$$url $(PY) manage.py migrate -v 0; \
	    DATABASE_URL=$$url $(PY) manage.py seed_feed --if-missing $$seed; \
	    DATABASE_URL=$$url $(PY) manage.py bench_feed --label $$size --out docs/bench-feed.json $(BENCH_FEED_ARGS); \
	  done'

clean:
	rm -rf $(VENV) .data
