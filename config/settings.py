"""Riff settings: one module, driven by the environment.

Defaults are production-safe (DEBUG off, secure cookies, HSTS). `make run` exports
RIFF_DEV=1 (DEBUG on, http allowed) for a laptop. Every variable is listed in the README.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return default if value is None else int(value)


def env_float(name: str, default: float | None) -> float | None:
    value = env(name)
    return default if value is None else float(value)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


def env_json(name: str, default):
    """A JSON value from the environment (an object of engine options, a routing table)."""
    value = env(name)
    if value is None:
        return default
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from exc


# Tests run under pytest; they get their own Redis database and cheap password hashing.
TESTING = env_bool("RIFF_TESTING", "pytest" in sys.modules)
DEV = env_bool("RIFF_DEV", False)

DEBUG = env_bool("DEBUG", DEV)
SECRET_KEY = env("SECRET_KEY") or (
    # Only dev and tests may run without a configured key; production must set one.
    "riff-insecure-dev-key-" + "x" * 40 if (DEV or TESTING or DEBUG) else None
)
if not SECRET_KEY:
    # One line, no traceback: manage.py prints it and exits 1.
    raise ImproperlyConfigured(
        "SECRET_KEY is not set: export SECRET_KEY=<50+ random characters> in production, or "
        "RIFF_DEV=1 on a laptop for an insecure local key (make run sets it)"
    )
# Old keys still accepted while a rotation settles (signatures, list cursors).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if (DEV or TESTING) else "")
if TESTING:
    ALLOWED_HOSTS += ["testserver"]
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Websocket origins allowed in addition to ALLOWED_HOSTS (mobile apps send no Origin at all).
WEBSOCKET_ALLOWED_ORIGINS = env_list("WEBSOCKET_ALLOWED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI and ReDoc as static files: /api/docs/ and /api/redoc/ work offline.
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "cameos",
    "rights",
    "generation",
    "feed",
    "remix",
    "moderation",
    # Development tooling (seed, benchmarks, engine CLIs as manage.py commands); no app imports it.
    "config.devtools",
]

MIDDLEWARE = [
    "config.observability.MetricsMiddleware",
    # /v1/ (the OpenAI-compatible Videos API) answers errors in OpenAI's shape: it rewrites
    # the envelope every layer below produces (config.core.openai_errors).
    "config.core.openai_errors.OpenAIErrorsMiddleware",
    # Outside all the others: /api/ and /v1/ errors are the JSON envelope even where Django
    # answers itself, in DEBUG too (config.core.errors).
    "config.core.errors.ApiErrorsMiddleware",
    # Body limits and NUL-free URLs before anything reads the request (config.core.limits).
    "config.core.limits.BodyLimitGuard",
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise, streaming block by block under uvicorn (config.core.files).
    "config.core.files.StaticFilesMiddleware",
    # Sessions, the session's user and messages: for the admin and the console only
    # (config.core.site); the API, probes and media skip them. CSRF stays Django's own.
    "config.core.site.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.core.site.AuthenticationMiddleware",
    "config.core.site.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # /api/v1 answers are tokens or the caller's own data: no-store unless a view says else.
    "config.core.caching.ApiNoStoreMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project overrides of library templates (ReDoc's page without web fonts).
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/riff")
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
_db.setdefault("OPTIONS", {})
if env_bool("DATABASE_POOL", not TESTING):
    # psycopg 3's pool; Django forbids combining it with persistent connections.
    _db["OPTIONS"]["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN", 2),
        "max_size": env_int("DATABASE_POOL_MAX", 20),
        "timeout": 10,
    }
# Hot reads (config.core.sql) are prepared once per connection; Django's own queries never are
# (client-side binding). Off behind a pooler that can't keep prepared statements.
_db["OPTIONS"]["prepare_threshold"] = (
    # Never by count: only statements that ask (prepare=True) are prepared.
    1_000_000_000 if env_bool("DATABASE_PREPARE", True) else None
)
_db["CONN_HEALTH_CHECKS"] = True
# Django's backend, but a pooled connection used a moment ago is not pinged on checkout
# (config/core/postgres/base.py).
_db["ENGINE"] = "config.core.postgres"
_db.setdefault("TEST", {})["NAME"] = env("TEST_DATABASE_NAME", "test_riff")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (throttles, tickets, feed snapshots), channel layer, Celery -----------------
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


if TESTING:
    # Keep tests off the developer's data: database 15 unless told otherwise.
    REDIS_URL = _redis_db(REDIS_URL, env_int("TEST_REDIS_DB", 15))

CACHES = {
    "default": {
        # One pool per process, not one per request (config.core.redis.SharedRedisCache).
        "BACKEND": "config.core.redis.SharedRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "riff",
        "TIMEOUT": 300,
        # Bounded like every Redis call (config.core.redis.TIMEOUT_SECONDS): a frozen Redis costs a
        # request seconds, never a hang, and the callers degrade (docs/operations.md).
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

CHANNEL_LAYERS = {
    "default": {
        # channels_redis with a blocking pop shorter than redis-py's socket timeout, so idle
        # websockets stay open (config.core.redis.ChannelLayer).
        "BACKEND": "config.core.redis.ChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": "riff:asgi",
            "capacity": 1000,
            "expiry": 30,
        },
    }
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
# Redis re-delivers an unacked message after the visibility timeout, so it must outlast the
# longest task (the hard time limit) or a slow generation would run twice.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 15 * 60)
CELERY_TASK_ALWAYS_EAGER = False
# Nothing reads task results (outcomes live in rows). Storing them would also make every sender
# subscribe to Redis pub/sub, and while Redis is down that subscription holds a request ~20 s
# before failing with a RuntimeError (a 500).
CELERY_TASK_IGNORE_RESULT = True
# A `task-sent` event per published message (monitors such as Flower show "sent" from it):
# a second publish on every task, 170-290 us of the publisher's CPU each (an admission, an
# order refresh). Off unless asked for; bench_feed's server turns it on to count what its
# requests published.
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", False)
CELERY_BEAT_SCHEDULE = {
    "generation-sweep": {"task": "generation.tasks.generation_sweep", "schedule": 15.0},
    "idempotency-purge": {"task": "accounts.tasks.idempotency_purge", "schedule": 3600.0},
    "feed-partitions": {"task": "feed.tasks.feed_partitions_ensure", "schedule": 86400.0},
    "feed-trending": {"task": "feed.tasks.feed_trending_refresh", "schedule": 240.0},
    "feed-cold-start": {"task": "feed.tasks.feed_cold_start_refresh", "schedule": 60.0},
    # Work whose message was lost while the broker was down (config.core.redis.enqueue_after_commit).
    "cameo-verify-sweep": {"task": "cameos.tasks.cameo_verify_sweep", "schedule": 60.0},
    "feed-embeddings-sweep": {"task": "feed.tasks.feed_embeddings_sweep", "schedule": 300.0},
    # Timed takedowns end on time (moderation.services.takedowns_expire).
    "moderation-expire": {"task": "moderation.tasks.moderation_expire", "schedule": 60.0},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # Without these a frozen Redis holds a publishing request forever (config.core.redis.publish).
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING and not env_bool("RIFF_TEST_REAL_HASHER"):
    # Argon2 costs ~50 ms a hash by design; the suite hashes thousands of passwords.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
RIFF_TOKEN_TTL = timedelta(days=env_int("RIFF_TOKEN_TTL_DAYS", 30))
# How stale a token's last_used_at may get (it is shown to staff; a write per read is not worth it).
RIFF_TOKEN_TOUCH_SECONDS = env_int("RIFF_TOKEN_TOUCH_SECONDS", 600)
# Each web process caches the tokens it reads, checked against a stamp in Redis on every use
# (accounts.authcache). An entry is re-read from PostgreSQL after this many seconds whatever
# its stamp says, which bounds how long a change made while Redis was unreachable can go
# unseen; 0 turns the cache off. At most this many entries per process (about 2 KB each).
RIFF_AUTH_CACHE_SECONDS = env_int("RIFF_AUTH_CACHE_SECONDS", 60)
RIFF_AUTH_CACHE_ENTRIES = env_int("RIFF_AUTH_CACHE_ENTRIES", 20_000)
# Feed pages from each process's memory (feed.postcache): post cards, authors, viewers' blocks,
# follows and likes, Latest's window, each checked against a stamp in Redis on every page and
# never trusted past this many seconds; 0 reads every page from the database. At most this many
# cards and authors per process (about 1 KB each), half as many viewers.
RIFF_FEED_CACHE_SECONDS = env_int("RIFF_FEED_CACHE_SECONDS", 60)
RIFF_FEED_CACHE_ENTRIES = env_int("RIFF_FEED_CACHE_ENTRIES", 50_000)
# HTTP requests run on the event loop's own thread, one at a time per process, as a synchronous
# worker would (config.core.handlers): about half the CPU per request of a thread per request,
# no overlap of one process's requests while they wait on the database. Run more uvicorn
# workers with it (2 per core); docs/operations.md, "Serving speed".
RIFF_ASGI_INLINE = env_bool("RIFF_ASGI_INLINE", False)

# --- Generation workers (docs/generation.md, "Worker") ---
# torch threads per worker process (0: torch's default, one per core); process priority
# (nice); load and run the engine once when a gpu worker starts, so no job pays for it.
RIFF_ENGINE_THREADS = env_int("RIFF_ENGINE_THREADS", 1)
RIFF_WORKER_NICE = env_int("RIFF_WORKER_NICE", 0)
RIFF_WORKER_WARM = env_bool("RIFF_WORKER_WARM", True)
# A generation worker serves its Prometheus metrics (generation.metrics) on this port; 0: none.
RIFF_WORKER_METRICS_PORT = env_int("RIFF_WORKER_METRICS_PORT", 0)
# ... on this address: loopback by default; a fleet's private interface (or 0.0.0.0 behind a
# firewall) so that Prometheus on another machine can scrape it.
RIFF_WORKER_METRICS_ADDRESS = env("RIFF_WORKER_METRICS_ADDRESS", "127.0.0.1")
RIFF_INVITES_PER_USER = env_int("RIFF_INVITES_PER_USER", 5)
# Live (unrevoked) Videos API keys a user may hold (accounts.apikeys).
RIFF_API_KEYS_PER_USER = env_int("RIFF_API_KEYS_PER_USER", 20)
RIFF_MIN_AGE = 13
RIFF_ADULT_AGE = 18
RIFF_AVATAR_MAX_BYTES = env_int("RIFF_AVATAR_MAX_BYTES", 10 * 1024 * 1024)
RIFF_AVATAR_MAX_PIXELS = env_int("RIFF_AVATAR_MAX_PIXELS", 40_000_000)
RIFF_AVATAR_SIZES = (512, 128)
RIFF_REALTIME_TICKET_TTL = 60

# --- Hooks (config.core.hooks): lower layers declare them (<app>/hooks.py), upper layers implement --
# Each name maps to dotted paths called in order (a provider hook takes one). `manage.py check`
# imports every path. The protocols in each app's hooks.py say what a hook receives.
RIFF_HOOKS: dict[str, list[str]] = {
    # accounts
    "account.deleted": [
        "feed.services.on_account_deleted",
        # Revokes the cameos: every video showing the likeness goes, others' drafts included.
        "cameos.services.on_account_deleted",
        # Then the user's own videos and their files.
        "generation.services.on_account_deleted",
    ],
    "user.blocked": ["cameos.services.on_block"],
    # cameos: generation stops jobs and removes every video showing the cameo
    "cameo.revoked": [
        "generation.services.on_cameo_revoked",
        # Creation cards keep the owner's usable cameos a while; a revoked one is never offered.
        "feed.ranking.cards.on_cameo_revoked",
    ],
    "cameo.consent_withdrawn": ["generation.services.on_cameo_consent_withdrawn"],
    # generation
    "video.removed": ["feed.services.on_video_removed"],
    # Moderation's reversible takedown of a video hides / brings back its post.
    "video.taken_down": ["feed.services.on_video_taken_down"],
    "video.restored": ["feed.services.on_video_restored"],
    # Likenesses a request carries without naming them (docs/generation.md, admission).
    # The feed's card state keeps each viewer's last creation (docs/feed.md, cards).
    "generation.admitted": ["feed.ranking.cards.on_generation_admitted"],
    "admission.likeness_sources": ["remix.checks.remix_parent_cameos"],
    # Checks of the prompt alone, before cameos are resolved: moderation's prompt blocklist
    # (and protected figures the caller could never bring in). 403 `content_policy`.
    "admission.prompt_check": ["moderation.checks.prompt_safety"],
    # Further policy checks that may refuse (the IP check is rights.catalogue, called directly:
    # rights sits below generation): moderation's public-figure protection.
    "admission.check": ["moderation.checks.admission_safety"],
    # Reads admission's first round trip carries: moderation's policy freshness stamp.
    "admission.prefetch": ["moderation.checks.admission_prefetch"],
    # Rewrites of the request: keep a serve_id only when it was served to its creator.
    "admission.adjust": ["feed.services.admission_serve_id"],
    # Checks of the generated frames before a video is delivered; any problem holds it for
    # review (docs/moderation-safety.md). Default: moderation's frame-hash blocklist.
    "video.output_check": ["moderation.checks.output_hash_blocklist"],
    # A held video is opened for review: a system report in moderation's output_check queue.
    "video.held": ["moderation.checks.on_video_held"],
    # The parent clip's last frames for a remix; unset: remixes use the prompt alone.
    "remix.context": ["remix.context.parent_frames"],
    # A post and every remix below it (consent withdrawal reaches remixes).
    "remix.subtree": ["remix.selectors.subtree_post_ids"],
    # The video a remix parent post shows: a remix inherits its IP claims.
    "remix.parent_video": ["remix.selectors.parent_video_id"],
    # The live post showing a video: a Videos API remix of a posted video remixes that post.
    "video.live_post": ["feed.selectors.live_post_of_video"],
    # Who shares a post's revenue (rights.split): creator, cameo owners and IP holders of the
    # video's licensed claims (feed), ancestors (remix).
    "revenue.contributors": [
        "feed.revenue.post_contributors",
        "remix.revenue.ancestor_contributors",
    ],
}

# --- Revenue (docs/rights.md "Revenue split") -----------------------------------------------
# Basis points (1/100 of a percent) of a revenue event; the worked example is in the doc.
RIFF_REVENUE_PLATFORM_FEE_BPS = env_int("RIFF_REVENUE_PLATFORM_FEE_BPS", 2000)
RIFF_REVENUE_IP_CAP_BPS = env_int("RIFF_REVENUE_IP_CAP_BPS", 5000)
RIFF_REVENUE_CAMEO_BPS = env_int("RIFF_REVENUE_CAMEO_BPS", 1000)
RIFF_REVENUE_CAMEO_CAP_BPS = env_int("RIFF_REVENUE_CAMEO_CAP_BPS", 3000)
RIFF_REVENUE_ANCESTOR_BPS = env_int("RIFF_REVENUE_ANCESTOR_BPS", 2000)
RIFF_REVENUE_ANCESTOR_MAX_DEPTH = env_int("RIFF_REVENUE_ANCESTOR_MAX_DEPTH", 3)

# --- Rights catalogue (docs/rights.md "Detection") ------------------------------------------
# The worker's semantic check (MiniLM): off skips it (alias and cameo matching stay on).
RIFF_RIGHTS_SEMANTIC = env_bool("RIFF_RIGHTS_SEMANTIC", True)
# Cosine at or above which a prompt is taken to depict an asset whose own threshold is unset.
# Unset: rights.semantic.DEFAULT_THRESHOLD, calibrated on the labelled set (docs/rights-detection.md).
RIFF_RIGHTS_SEMANTIC_THRESHOLD = env_float("RIFF_RIGHTS_SEMANTIC_THRESHOLD", None)
# A licensed asset's per-generation fee: paid by the platform to the holder when a video
# using it is made, in this currency; at most this many micros.
RIFF_RIGHTS_FEE_CURRENCY = env("RIFF_RIGHTS_FEE_CURRENCY", "USD")
RIFF_RIGHTS_MAX_FEE_MICROS = 10**12
# GET /rights/check waits this long for a worker's semantic answer, then answers alias-only.
RIFF_RIGHTS_CHECK_TIMEOUT = env_float("RIFF_RIGHTS_CHECK_TIMEOUT", 3.0)
# The bearer token of internal services (billing, ads) on the service endpoints
# (POST /revenue/events, POST /credits/grants). Empty: staff only. Compared in constant time.
RIFF_SERVICE_TOKEN = env("RIFF_SERVICE_TOKEN", "")

# --- Moderation (docs/moderation.md) --------------------------------------------------------
RIFF_STRIKE_DAYS = env_int("RIFF_STRIKE_DAYS", 90)  # a strike is in force this long
RIFF_SUSPEND_DEFAULT_HOURS = env_int("RIFF_SUSPEND_DEFAULT_HOURS", 7 * 24)
RIFF_APPEAL_WINDOW_DAYS = env_int("RIFF_APPEAL_WINDOW_DAYS", 30)
# The default output check (docs/moderation-safety.md): the dHash of every Nth generated frame
# (and the last) against the blocked frame hashes; a frame this many bits or fewer away from
# one holds the video for review.
RIFF_OUTPUT_HASH_EVERY = env_int("RIFF_OUTPUT_HASH_EVERY", 4)
RIFF_OUTPUT_HASH_DISTANCE = env_int("RIFF_OUTPUT_HASH_DISTANCE", 8)

# --- Cameos ---------------------------------------------------------------------------------
RIFF_CAMEO_MAX_BYTES = env_int("RIFF_CAMEO_MAX_BYTES", 50 * 1024 * 1024)
RIFF_CAMEO_MAX_SIDE = env_int("RIFF_CAMEO_MAX_SIDE", 3840)
RIFF_CAMEO_MIN_SECONDS = 2.0
RIFF_CAMEO_MAX_SECONDS = 20.0
RIFF_CAMEO_CHALLENGE_TTL = env_int("RIFF_CAMEO_CHALLENGE_TTL", 15 * 60)
# "auto": a human reviews only borderline recordings (and every character); "always": every one.
RIFF_CAMEO_REVIEW_POLICY = env("RIFF_CAMEO_REVIEW_POLICY", "auto")

# --- Generation -----------------------------------------------------------------------------
# The engine backend (generation.engine registry) and its options; workers load it once.
RIFF_ENGINE = env("RIFF_ENGINE", "riff-world")
# Sampler trade-offs measured on the shipped weights are in docs/engine.md ("Sampling").
RIFF_ENGINE_OPTIONS: dict = {}
if RIFF_ENGINE == "riff-world":
    RIFF_ENGINE_OPTIONS = {
        "steps": env_int("RIFF_SAMPLER_STEPS", 24),
        "shift": env_float("RIFF_SAMPLER_SHIFT", 1.0),
    }
    # Unset: the weights' own "sampler" metadata decides (the shipped file asks for two passes).
    if env("RIFF_SAMPLER_TWO_PASS") is not None:
        RIFF_ENGINE_OPTIONS["two_pass"] = env_bool("RIFF_SAMPLER_TWO_PASS")
# A JSON object replaces them all: another backend's options (docs/operations.md, "Fleet").
RIFF_ENGINE_OPTIONS = env_json("RIFF_ENGINE_OPTIONS", RIFF_ENGINE_OPTIONS)
if TESTING:
    # The engine's tiny random-weight config: real model code, seconds on a CPU.
    RIFF_ENGINE_OPTIONS = {"config": "tiny", "weights": None, "steps": 4}
# Named engines: {"wan2.1-t2v-1.3b": {"backend": "diffusers", "family": "wan", "path": ...}}.
# Each is registered at start-up as its backend with these options (the rest of the object),
# so RIFF_ENGINE, RIFF_VIDEO_MODELS and a job's `model` can name it (docs/engine-backends.md).
RIFF_ENGINES: dict = env_json("RIFF_ENGINES", {})
# The Celery queue each engine's jobs go to, by engine name; "name@WxH" routes one delivered
# size of it elsewhere (a bigger GPU class for 720p). An engine not named here: `gpu`. A worker
# consumes the queues of the engines it runs (manage.py generation_worker).
RIFF_GENERATION_QUEUES: dict = env_json("RIFF_GENERATION_QUEUES", {})
for _route, _queue in RIFF_GENERATION_QUEUES.items():
    if not isinstance(_queue, str) or not (_queue == "gpu" or _queue.startswith("gpu.")):
        raise ImproperlyConfigured(
            f"RIFF_GENERATION_QUEUES[{_route!r}] must be `gpu` or `gpu.<name>`, not {_queue!r}"
        )
for _name, _spec in RIFF_ENGINES.items():
    if not isinstance(_spec, dict) or not isinstance(_spec.get("backend"), str):
        raise ImproperlyConfigured(f'RIFF_ENGINES[{_name!r}] needs a "backend" name')
RIFF_DAILY_QUOTA = env_int("RIFF_DAILY_QUOTA", 50)
RIFF_DAILY_QUOTA_TEEN = env_int("RIFF_DAILY_QUOTA_TEEN", 15)
RIFF_MAX_CAMEOS_PER_VIDEO = 3
RIFF_DEFAULT_SECONDS = 2
RIFF_GENERATION_LEASE_SECONDS = env_int("RIFF_GENERATION_LEASE_SECONDS", 120)
RIFF_GENERATION_MAX_ATTEMPTS = env_int("RIFF_GENERATION_MAX_ATTEMPTS", 3)
RIFF_DISPATCH_RESEND_AFTER = env_int("RIFF_DISPATCH_RESEND_AFTER", 60)
RIFF_PROVENANCE_MAX_BYTES = env_int("RIFF_PROVENANCE_MAX_BYTES", 200 * 1024 * 1024)
# C2PA signing credentials (PEM chain + PKCS#8 key). Unset: a dev CA under DATA_DIR/c2pa.
RIFF_C2PA_CERT_PATH = env("RIFF_C2PA_CERT_PATH")
RIFF_C2PA_KEY_PATH = env("RIFF_C2PA_KEY_PATH")
# The short side of the delivered MP4, in pixels (the engine's clips are upscaled).
RIFF_VIDEO_SHORT_SIDE = env_int("RIFF_VIDEO_SHORT_SIDE", 512)

# --- Webhooks (docs/webhooks.md) --------------------------------------------------------------
# Endpoints may point at private, loopback or link-local addresses only when this is on (tests,
# a closed network); off, such URLs are refused at registration and again at each delivery.
RIFF_WEBHOOK_ALLOW_PRIVATE = env_bool("RIFF_WEBHOOK_ALLOW_PRIVATE", False)
# One delivery attempt, connect to last byte read, is cut off after this long.
RIFF_WEBHOOK_TIMEOUT_SECONDS = env_float("RIFF_WEBHOOK_TIMEOUT_SECONDS", 10.0)
# Seconds before each retry of a failed attempt; after the last, the delivery is `failed`.
RIFF_WEBHOOK_RETRY_DELAYS = [
    int(delay) for delay in env_list("RIFF_WEBHOOK_RETRY_DELAYS", "5,300,1800,7200,18000,36000")
]
# After a rotation the previous secret keeps signing (next to the new one) this long.
RIFF_WEBHOOK_ROTATION_GRACE_SECONDS = env_int("RIFF_WEBHOOK_ROTATION_GRACE_SECONDS", 24 * 3600)
RIFF_WEBHOOKS_PER_USER = env_int("RIFF_WEBHOOKS_PER_USER", 10)
# The Videos API (/v1/, docs/videos-api.md). `model` names the engine: the configured one, any
# extra engine the workers run (RIFF_VIDEO_MODELS), or one of the aliases below, so that a
# program written for the API that closed runs unchanged (the Video shows the real engine).
RIFF_VIDEO_MODELS = [RIFF_ENGINE, *[m for m in env_list("RIFF_VIDEO_MODELS") if m != RIFF_ENGINE]]
RIFF_VIDEO_MODEL_ALIASES = env_list(
    "RIFF_VIDEO_MODEL_ALIASES",
    "sora-2,sora-2-pro,sora-2-2025-10-06,sora-2-pro-2025-10-06,sora-2-2025-12-08",
)
# What `openai-poll-after-ms` tells a polling client while a video is queued or rendering.
RIFF_VIDEOS_POLL_AFTER_MS = env_int("RIFF_VIDEOS_POLL_AFTER_MS", 2000)
# Whether the engine can start a clip from an image (riff-world can: it continues context
# frames). Off: `input_reference` is refused with 400 `input_reference_unsupported`.
RIFF_VIDEO_REFERENCE_IMAGES = env_bool("RIFF_VIDEO_REFERENCE_IMAGES", True)
RIFF_VIDEO_REFERENCE_MAX_BYTES = env_int("RIFF_VIDEO_REFERENCE_MAX_BYTES", 10 * 1024 * 1024)
RIFF_VIDEO_REFERENCE_MAX_PIXELS = env_int("RIFF_VIDEO_REFERENCE_MAX_PIXELS", 40_000_000)
# The longest clip an extension may make (the stitched total), in seconds.
RIFF_VIDEO_MAX_SECONDS = env_int("RIFF_VIDEO_MAX_SECONDS", 60)

# --- For You feed (docs/feed.md explains each knob) --------------------------------------------
# A feed session's ranked snapshot lives this long in Redis; its cursor names it.
RIFF_FEED_SNAPSHOT_TTL = env_int("RIFF_FEED_SNAPSHOT_TTL", 30 * 60)
RIFF_FEED_SNAPSHOT_SIZE = env_int("RIFF_FEED_SNAPSHOT_SIZE", 300)
# For You ranks ahead of the request (feed.ranking.snapshot): a viewer's ranked order is reused by
# their next sessions, re-ranked on a worker once it is this old, and in the request once it is
# the second age (or used up, or dropped by a preference change or "see less").
RIFF_FEED_ORDER_REFRESH_SECONDS = env_int("RIFF_FEED_ORDER_REFRESH_SECONDS", 10 * 60)
RIFF_FEED_ORDER_MAX_AGE_SECONDS = env_int("RIFF_FEED_ORDER_MAX_AGE_SECONDS", 6 * 3600)
# ... and on a worker too once a session starts with fewer than this many pages (of its size)
# left after its first: a viewer who keeps scrolling finds the next order ranked already.
RIFF_FEED_ORDER_LOW_PAGES = env_int("RIFF_FEED_ORDER_LOW_PAGES", 2)
# Candidates come from posts this recent; impressions this recent count as "seen".
RIFF_FEED_CANDIDATE_DAYS = env_int("RIFF_FEED_CANDIDATE_DAYS", 14)
RIFF_FEED_SEEN_HOURS = env_int("RIFF_FEED_SEEN_HOURS", 72)
# Hard author cap: at most CAP posts by one author in any WINDOW consecutive posts.
RIFF_FEED_AUTHOR_CAP = env_int("RIFF_FEED_AUTHOR_CAP", 3)
RIFF_FEED_AUTHOR_WINDOW = env_int("RIFF_FEED_AUTHOR_WINDOW", 20)
# Soft author decay (score multiplier per earlier post by the same author in the snapshot).
RIFF_FEED_AUTHOR_DECAY = float(env("RIFF_FEED_AUTHOR_DECAY", "0.7"))
# MMR diversity over prompt embeddings, and the wanted share of in-network posts.
RIFF_FEED_DIVERSITY = float(env("RIFF_FEED_DIVERSITY", "0.3"))
RIFF_FEED_IN_NETWORK_SHARE = float(env("RIFF_FEED_IN_NETWORK_SHARE", "0.4"))
# Authors with fewer followers than this are "small creators" for the cold-start slot.
RIFF_FEED_SMALL_CREATOR_FOLLOWERS = env_int("RIFF_FEED_SMALL_CREATOR_FOLLOWERS", 50)
# Scoring weights: creation signals (remix, cameo use) dominate consumption (likes, watch).
RIFF_FEED_WEIGHTS: dict = {
    "remix": 4.0,
    "cameo_use": 3.0,
    "like": 0.5,
    "watch": 0.5,
    "see_less": 3.0,
    "remixable": 0.3,
    "steer": 2.0,
    "half_life_hours": 36.0,
}
# Creation cards: one after every CARD_EVERY passive posts, the gap doubling (up to MAX_GAP)
# for each card not followed by a creation; none for QUIET seconds after the viewer creates.
RIFF_FEED_CARD_EVERY = env_int("RIFF_FEED_CARD_EVERY", 8)
RIFF_FEED_CARD_MAX_GAP = env_int("RIFF_FEED_CARD_MAX_GAP", 64)
RIFF_FEED_CARD_QUIET_SECONDS = env_int("RIFF_FEED_CARD_QUIET_SECONDS", 20 * 60)
# Teens: feed posts served per day (all feed kinds) before the end-of-feed card.
RIFF_FEED_TEEN_DAILY_CAP = env_int("RIFF_FEED_TEEN_DAILY_CAP", 120)
# Creation metrics: a session ends after this much inactivity (seconds).
RIFF_FEED_METRICS_SESSION_GAP = env_int("RIFF_FEED_METRICS_SESSION_GAP", 30 * 60)

# --- Request body limits (docs/operations.md "Request body limits") ----------------------------
# Enforced before the body is read (config.core.limits): a larger declared Content-Length, or
# more bytes streamed, is 413 `too_large`. "Anonymous" means no Authorization header.
RIFF_BODY_MAX_BYTES = env_int("RIFF_BODY_MAX_BYTES", 1024 * 1024)
RIFF_BODY_MAX_BYTES_ANONYMOUS = env_int("RIFF_BODY_MAX_BYTES_ANONYMOUS", 64 * 1024)
RIFF_BODY_MAX_BYTES_ADMIN = env_int("RIFF_BODY_MAX_BYTES_ADMIN", 2 * 1024 * 1024)
# Room for the multipart boundaries and part headers around an uploaded file.
RIFF_BODY_MULTIPART_OVERHEAD = env_int("RIFF_BODY_MULTIPART_OVERHEAD", 64 * 1024)
# (methods, path regex, limit, anonymous limit): the first match wins, anything else gets
# RIFF_BODY_MAX_BYTES (RIFF_BODY_MAX_BYTES_ANONYMOUS without an Authorization header).
RIFF_BODY_LIMITS: list[tuple[str, str, int, int]] = [
    (
        "PUT",
        r"^/api/v1/cameos/[^/]+/recording$",
        RIFF_CAMEO_MAX_BYTES + RIFF_BODY_MULTIPART_OVERHEAD,
        RIFF_BODY_MAX_BYTES_ANONYMOUS,
    ),
    (
        "PUT",
        r"^/api/v1/me/avatar$",
        RIFF_AVATAR_MAX_BYTES + RIFF_BODY_MULTIPART_OVERHEAD,
        RIFF_BODY_MAX_BYTES_ANONYMOUS,
    ),
    (
        "POST",
        r"^/api/v1/provenance/verify$",
        RIFF_PROVENANCE_MAX_BYTES + RIFF_BODY_MULTIPART_OVERHEAD,
        RIFF_BODY_MAX_BYTES_ANONYMOUS,
    ),
    # The Videos API's uploads: a first-frame image, a character's video.
    (
        "POST",
        r"^/v1/videos$",
        RIFF_VIDEO_REFERENCE_MAX_BYTES + RIFF_BODY_MULTIPART_OVERHEAD,
        RIFF_BODY_MAX_BYTES_ANONYMOUS,
    ),
    (
        "POST",
        r"^/v1/videos/characters$",
        RIFF_CAMEO_MAX_BYTES + RIFF_BODY_MULTIPART_OVERHEAD,
        RIFF_BODY_MAX_BYTES_ANONYMOUS,
    ),
    # An extension or an edit may send the source as the file it downloaded.
    (
        "POST",
        r"^/v1/videos/(extensions|edits)$",
        RIFF_PROVENANCE_MAX_BYTES + RIFF_BODY_MULTIPART_OVERHEAD,
        RIFF_BODY_MAX_BYTES_ANONYMOUS,
    ),
    # The console signs in with a session cookie, so its requests carry no Authorization.
    ("*", r"^/admin/", RIFF_BODY_MAX_BYTES_ADMIN, RIFF_BODY_MAX_BYTES_ADMIN),
]
# Django's own caps agree: no form field or JSON body may exceed the largest non-upload limit
# (RequestDataTooBig is answered 413 too), and bodies up to the JSON limit stay in memory while
# larger ones (uploads only) spool to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(RIFF_BODY_MAX_BYTES, RIFF_BODY_MAX_BYTES_ADMIN)
FILE_UPLOAD_MAX_MEMORY_SIZE = RIFF_BODY_MAX_BYTES

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.core.pagination.KeysetPagination",
    "PAGE_SIZE": 20,
    # Keyed on config.core.clientip.client_ip (RIFF_TRUSTED_PROXIES), never the raw header.
    "DEFAULT_THROTTLE_CLASSES": [
        "config.core.throttles.AnonThrottle",
        "config.core.throttles.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("THROTTLE_ANON", "120/min"),
        "user": env("THROTTLE_USER", "1200/min"),
        "login": env("THROTTLE_LOGIN", "10/min"),
        "register": env("THROTTLE_REGISTER", "20/hour"),
        # /admin/login/ POSTs, per client address and per account (accounts.admin_login).
        "admin_login": env("THROTTLE_ADMIN_LOGIN", "10/min"),
        # Per Videos API key on /v1/ (accounts.throttles.ApiKeyThrottle), besides the user rate.
        "api_key": env("THROTTLE_API_KEY", "120/min"),
    },
    "EXCEPTION_HANDLER": "config.core.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's negotiation, answering no Accept, `*/*` and the renderer's own type without
    # parsing (config.core.negotiation).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.core.negotiation.QuickNegotiation",
    # JSON only (hardened: depth, NaN, NUL; config.core.parsers); uploads opt into multipart.
    "DEFAULT_PARSER_CLASSES": ["config.core.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Proxies whose X-Forwarded-For is believed (IPs / CIDRs); empty: the TCP peer is the client.
RIFF_TRUSTED_PROXIES = env_list("RIFF_TRUSTED_PROXIES")
if env("NUM_PROXIES"):
    # A hop count trusted whatever sat at those hops; refuse to start rather than guess.
    raise ImproperlyConfigured("NUM_PROXIES is gone: list your proxies in RIFF_TRUSTED_PROXIES")
# /metrics answers these client addresses, or a request with `Authorization: Bearer <token>`.
RIFF_METRICS_ALLOWED_IPS = env_list("RIFF_METRICS_ALLOWED_IPS", "127.0.0.1,::1")
RIFF_METRICS_TOKEN = env("RIFF_METRICS_TOKEN")
for _entry in (*RIFF_TRUSTED_PROXIES, *RIFF_METRICS_ALLOWED_IPS):
    ipaddress.ip_network(_entry, strict=False)  # a typo fails at start-up, not silently
if TESTING:
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update(
        anon="100000/min", user="100000/min", api_key="100000/min"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "Riff API",
    "DESCRIPTION": "The REST contract of Riff, the open creation-first AI video social backend.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # The docs pages load Swagger UI / ReDoc from this server (drf-spectacular-sidecar).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"bearerAuth": []}],
    "ENUM_NAME_OVERRIDES": {
        "FeedItemKindEnum": ["post", "create_prompt"],
        "CameoKindEnum": "cameos.models.CameoKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.core.schema.add_error_envelope",
        "config.core.schema.document_list_paging",
        "config.core.schema.forbid_unknown_request_fields",
    ],
}

# --- Storage --------------------------------------------------------------------------------
DATA_DIR = Path(env("RIFF_DATA_DIR", str(BASE_DIR / ".data")))
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_URL = env("MEDIA_URL", "/media/")
STATIC_ROOT = Path(env("STATIC_ROOT", str(DATA_DIR / "static")))
STATIC_URL = "/static/"
# Serve MEDIA_ROOT from Django (dev and single-box installs); behind S3 or a CDN, turn it off.
RIFF_SERVE_MEDIA = env_bool("RIFF_SERVE_MEDIA", True)
# The only MEDIA_ROOT prefixes served as plain files (profile pictures are public anyway).
RIFF_PUBLIC_MEDIA_PREFIXES = ("avatars/",)
# Lifetime of the signed URLs API responses hand out for video files (config.core.media).
RIFF_MEDIA_URL_TTL = env_int("RIFF_MEDIA_URL_TTL", 3600)
STORAGE_BACKEND = env("STORAGE_BACKEND", "filesystem")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL"),
            "region_name": env("AWS_S3_REGION_NAME"),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not (DEBUG or TESTING)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- i18n -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production-safe unless RIFF_DEV) ---------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
_https = not (DEV or TESTING or DEBUG) and env_bool("RIFF_HTTPS", True)
SECURE_SSL_REDIRECT = _https
# Load balancers probe over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _https else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = _https
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
