"""Sessions, the session's user and messages run for the admin and the console only
(config.core.site): the API, probes and media skip them, and the site keeps them, with CSRF
(Django's own middleware, on every path) still enforced there."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.tokens import token_issue

pytestmark = pytest.mark.django_db


def test_api_requests_and_probes_touch_no_session(make_user):
    user = make_user(username="apiuser")
    client = Client()
    # A session cookie rides along, as a browser signed in to the admin would send it.
    client.force_login(make_user(username="boss", is_staff=True, is_superuser=True))
    r = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}")
    assert r.status_code == 200 and r.json()["username"] == "apiuser"
    assert not hasattr(r.wsgi_request, "session")
    assert not hasattr(r.wsgi_request, "_messages")
    assert "csrftoken" not in r.cookies and "Cookie" not in r.get("Vary", "")
    # The session cookie authenticates nothing on the API.
    r = client.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_authenticated"
    r = client.get("/healthz")
    assert r.status_code == 200
    assert not hasattr(r.wsgi_request, "session") and not hasattr(r.wsgi_request, "user")


def test_the_console_and_the_admin_keep_sessions_users_and_csrf(make_user):
    boss = make_user(username="boss", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(boss)
    r = client.get("/admin/")
    assert r.status_code == 200
    assert r.wsgi_request.session.session_key and r.wsgi_request.user == boss
    r = client.get("/console/")
    assert r.status_code == 200 and r.wsgi_request.user == boss
    # A form post without the CSRF token is refused on the site, and nothing is logged out.
    r = client.post("/admin/logout/")
    assert r.status_code == 403
    assert client.get("/admin/").status_code == 200
    token = client.cookies["csrftoken"].value
    r = client.post("/admin/logout/", {"csrfmiddlewaretoken": token})
    assert r.status_code == 200
    assert client.get("/admin/").status_code == 302  # signed out: the login page
