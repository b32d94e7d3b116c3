"""Shared fixtures. Tests run against real PostgreSQL and Redis (database 15)."""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import UserFactory, token_for


@pytest.fixture(autouse=True)
def _clean_redis():
    # Database 15 belongs to the tests alone (config.settings), so flushing it is safe.
    cache._cache.get_client(write=True).flushdb()
    yield


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    yield


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def make_user(db):
    def make(**kwargs):
        return UserFactory(**kwargs)

    return make


@pytest.fixture
def user(make_user):
    return make_user(username="alice")


@pytest.fixture
def other(make_user):
    return make_user(username="bob")


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    client.user = user
    return client


@pytest.fixture
def client_of():
    return client_for


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def teen_birth_date():
    today = date.today()
    return date(today.year - 15, 1, 1)


def png_bytes(size=(64, 48), color=(200, 30, 30), fmt="PNG", **save) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt, **save)
    return out.getvalue()
