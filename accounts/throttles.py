"""Throttles for signing in: the API login (per account) and the admin login (per address and
per account). Both sit on DRF's cache-backed `SimpleRateThrottle`, so the windows live in Redis
like every other rate limit; addresses come from `config.core.clientip.client_ip`.

And the per-key rate of the Videos API (`ApiKeyThrottle`), a window counter like the per-user
throttle's.
"""

from __future__ import annotations

import hashlib
import math

from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import SimpleRateThrottle

from config.core.throttles import ClientIpThrottleMixin, WindowCounterMixin

from .models import ApiKey
from .names import name_key


def _account_ident(raw: object) -> str:
    # Keyed like the login lookup (the name key), so "ALICE" and "alice" share one window.
    return hashlib.sha256(name_key(str(raw or "")[:64]).encode()).hexdigest()[:32]


class LoginUsernameThrottle(ClientIpThrottleMixin, SimpleRateThrottle):
    """Limits API login attempts per target account, whatever the caller's address."""

    scope = "login"

    def get_cache_key(self, request, view):
        data = request.data if isinstance(request.data, dict) else {}
        ident = _account_ident(data.get("username", ""))
        return self.cache_format % {"scope": "login-user", "ident": ident}


class ApiKeyThrottle(ClientIpThrottleMixin, WindowCounterMixin, SimpleRateThrottle):
    """Per Videos API key (`api_key` rate, THROTTLE_API_KEY): each key of a user has its own
    budget, so one runaway integration can't starve the owner's others (the per-user throttle
    still bounds them all). Requests not authenticated with a key pass untouched. Fails open
    when Redis is down, like every throttle."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class AdminLoginIpThrottle(ClientIpThrottleMixin, SimpleRateThrottle):
    scope = "admin_login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": "admin-login-ip", "ident": self.get_ident(request)}


class AdminLoginUsernameThrottle(ClientIpThrottleMixin, SimpleRateThrottle):
    scope = "admin_login"

    def get_cache_key(self, request, view):
        ident = _account_ident(request.POST.get("username", ""))
        return self.cache_format % {"scope": "admin-login-user", "ident": ident}


ADMIN_LOGIN_THROTTLES = (AdminLoginIpThrottle, AdminLoginUsernameThrottle)


def admin_login_refusal(request: HttpRequest) -> HttpResponse | None:
    """A 429 for a login POST over either limit, else None (and the attempt is counted).

    Every POST counts, right password or not, as DRF counts requests: a guesser who finds the
    password inside a spent window is still refused until the window moves on.
    """
    waits = []
    for throttle_class in ADMIN_LOGIN_THROTTLES:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or throttle.duration or 60)
    if not waits:
        return None
    retry_after = max(1, math.ceil(max(waits)))
    response = HttpResponse(
        f"Too many sign-in attempts. Try again in {retry_after} seconds.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(retry_after)
    return response
