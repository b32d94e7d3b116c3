"""DRF throttles keyed on `client_ip()`, failing open when Redis is down.

DRF's own `get_ident()` trusts the raw `X-Forwarded-For` header unless `NUM_PROXIES` is set,
so rotating the header used to give every request a fresh bucket. Every throttle in Riff mixes
in `ClientIpThrottleMixin`; the defaults in settings name the classes below.

The windows live in Redis (Django's cache). A rate limit is a guard, not data: when Redis can't
be reached the request is allowed and a warning logged, so an outage loses rate-limit windows
instead of answering every request with a 500 (docs/operations.md, "When Redis is down").
"""

from __future__ import annotations

from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle

from .clientip import client_ip
from .errors import BACKEND_DOWN_ERRORS
from .redis import degraded


class ClientIpThrottleMixin:
    def get_ident(self, request) -> str:
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except BACKEND_DOWN_ERRORS:
            degraded("throttle", type(self).__name__)
            return True


class AnonThrottle(ClientIpThrottleMixin, AnonRateThrottle):
    pass


class UserThrottle(ClientIpThrottleMixin, UserRateThrottle):
    """Per user when signed in; per client address otherwise."""


class ScopedThrottle(ClientIpThrottleMixin, ScopedRateThrottle):
    """Per view scope (`throttle_scope`), per user or client address."""
