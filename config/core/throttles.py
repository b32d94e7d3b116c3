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
from .redis import degraded, redis_client


class ClientIpThrottleMixin:
    def get_ident(self, request) -> str:
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except BACKEND_DOWN_ERRORS:
            degraded("throttle", type(self).__name__)
            return True


class WindowCounterMixin:
    """A sliding-window *counter* in one Redis round trip, for the throttles every request
    passes (per user, per anonymous address).

    DRF's own throttle keeps a log of timestamps in the cache: a GET and a SET of a pickled
    list per request, growing with the rate (up to 1,200 entries at the default user rate).
    Here each window of `duration` seconds has a counter; one pipeline increments the current
    window's and reads the previous one's, and the estimate is the current count plus the
    previous one weighted by how much of the previous window the sliding window still covers.
    Refused requests count too, so a client that keeps hammering stays refused until it slows
    down. Login and registration keep DRF's exact log (accounts.throttles)."""

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window, into = divmod(now, self.duration)
        current = f"riff:throttle:{self.key}:{int(window)}"
        previous = f"riff:throttle:{self.key}:{int(window) - 1}"
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(current)
        pipe.expire(current, 2 * self.duration)
        pipe.get(previous)
        count, _, before = pipe.execute()
        weight = 1 - into / self.duration
        self.estimate = (count - 1, int(before or 0), weight, into)
        return (count - 1) + int(before or 0) * weight < self.num_requests

    def wait(self) -> float | None:
        count, before, weight, into = self.estimate
        if count >= self.num_requests or not before:
            # Over the limit within this window alone: free once it ends.
            return self.duration - into
        # The previous window's share decays as the window slides: the time until it is small
        # enough for one more request.
        needed = (count + before * weight - self.num_requests + 1) / before
        return max(needed * self.duration, 0.0)


class AnonThrottle(ClientIpThrottleMixin, WindowCounterMixin, AnonRateThrottle):
    pass


class UserThrottle(ClientIpThrottleMixin, WindowCounterMixin, UserRateThrottle):
    """Per user when signed in; per client address otherwise."""


class ScopedThrottle(ClientIpThrottleMixin, ScopedRateThrottle):
    """Per view scope (`throttle_scope`), per user or client address."""
