import pytest

from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_healthz_touches_nothing(anon, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = anon.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz(anon):
    response = anon.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_reports_redis_down(anon, settings):
    # Changing CACHES through the settings fixture makes Django drop its cache connections.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    response = anon.get("/readyz")
    # Degraded, still ready: the API serves without Redis (docs/operations.md).
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "redis": "down"},
    }


def test_readyz_fails_without_the_database(anon, monkeypatch):
    import config.health

    def down():
        raise OSError("connection refused")

    monkeypatch.setattr(config.health, "_check_db", down)
    response = anon.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "down", "redis": "ok"},
    }


def test_unknown_api_path_is_enveloped(anon):
    assert_error(anon.get("/api/v1/definitely/not/here"), 404, "not_found")


def test_wrong_method(api):
    assert_error(api.put("/api/v1/notifications"), 405, "method_not_allowed")


def test_malformed_json(api):
    response = api.generic("PATCH", "/api/v1/me", "{not json", content_type="application/json")
    assert_error(response, 400, "invalid")


def test_schema_and_docs_are_public(anon):
    schema = anon.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/auth/register" in schema.content
    assert anon.get("/api/docs/").status_code == 200


def test_metrics(anon):
    anon.get("/healthz")
    response = anon.get("/metrics")
    assert response.status_code == 200
    assert (
        b'riff_http_requests_total{method="GET",route="healthz",status="200"}' in response.content
    )


def test_production_settings_pass_the_deploy_check():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RIFF_")}
    env.update(
        RIFF_TESTING="0",
        SECRET_KEY="prod-" + "k" * 60,
        ALLOWED_HOSTS="riff.example.com",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    env.pop("DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RIFF_") and k != "SECRET_KEY"}
    env.update(RIFF_TESTING="0", DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )
    # One line that says what to do, not a traceback.
    assert result.returncode == 1
    assert result.stderr.startswith("manage.py: SECRET_KEY is not set: export SECRET_KEY=")
    assert "RIFF_DEV=1" in result.stderr and result.stderr.count("\n") == 1


def test_committed_openapi_schema_is_current(tmp_path):
    """docs/openapi.yaml is what mobile clients are generated from: `make schema` rewrites it,
    and this fails when an API change forgot to."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "openapi.yaml"
    subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--file", str(out)],
        cwd=root,
        check=True,
        env={**os.environ, "RIFF_DEV": "1"},
        capture_output=True,
    )
    assert out.read_text() == (root / "docs" / "openapi.yaml").read_text(), "run `make schema`"
