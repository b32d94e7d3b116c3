"""DRF throttles keyed on `client_ip()`, failing open when Redis is down.

DRF's own `get_ident()` trusts the raw `X-Forwarded-For` header unless `NUM_PROXIES` is set,
so rotating the header used to give every request a fresh bucket. Every throttle in Riff mixes
in `ClientIpThrottleMixin`; the defaults in settings name the classes below.

The windows live in Redis (Django's cache). A rate limit is a guard, not data: when Redis can't
be reached the request is allowed and a warning logged, so an outage loses rate-limit windows
instead of answering every request with a 500 (docs/operations.md, "When Redis is down").
"""

from __future__ import annotations

from collections.abc import Callable

from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle

from .clientip import client_ip
from .errors import BACKEND_DOWN_ERRORS
from .redis import Batch, degraded, redis_client


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
        preloaded = getattr(request, PRELOADED, None)
        counts = preloaded.pop(self.key, None) if preloaded else None
        if counts is None:
            now = self.timer()
            pipe = Batch(redis_client())
            self.queue(pipe, self.key, now)
            counts = (now, *self.counts(pipe.execute()))
        now, count, before = counts
        into = now % self.duration
        weight = 1 - into / self.duration
        self.estimate = (count - 1, before, weight, into)
        return (count - 1) + before * weight < self.num_requests

    def queue(self, pipe, key: str, now: float) -> None:
        """Adds this request's count to `pipe` (three commands; `counts` reads their replies)."""
        window = int(now // self.duration)
        current = f"riff:throttle:{key}:{window}"
        pipe.incr(current)
        pipe.expire(current, 2 * self.duration)
        pipe.get(f"riff:throttle:{key}:{window - 1}")

    @staticmethod
    def counts(replies: list) -> tuple[int, int]:
        """(this window's count including this request, the previous window's count)."""
        count, _, before = replies
        return count, int(before or 0)

    def wait(self) -> float | None:
        count, before, weight, into = self.estimate
        if count >= self.num_requests or not before:
            # Over the limit within this window alone: free once it ends.
            return self.duration - into
        # The previous window's share decays as the window slides: the time until it is small
        # enough for one more request.
        needed = (count + before * weight - self.num_requests + 1) / before
        return max(needed * self.duration, 0.0)


# Where `user_windows_preload` leaves the counts it fetched, on the DRF request.
PRELOADED = "_riff_throttle_counts"
WINDOW_COMMANDS = 3  # what WindowCounterMixin.queue adds to a pipeline


def user_windows_preload(request, pipe, user_pk: object) -> Callable[[list], None] | None:
    """Queues the per-user window counts of the view `request` is for on `pipe`, for a caller
    that makes a Redis round trip before the throttles run (token authentication checks its
    cache there) and so saves the throttle its own. Returns what takes the pipeline's replies
    for these commands (the last ones queued; `WINDOW_COMMANDS` each) and leaves the counts on
    the request, or None when the view has no such throttle. Counted this way, a request that
    permissions then refuse counts against the user's rate too (DRF's order would have refused
    it before counting)."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    queued: list[tuple[str, float]] = []
    for cls in getattr(view, "throttle_classes", ()):
        if not (issubclass(cls, WindowCounterMixin) and issubclass(cls, UserRateThrottle)):
            continue
        throttle = cls()
        if throttle.rate is None:
            continue
        # UserRateThrottle.get_cache_key's key for a signed-in user.
        key = throttle.cache_format % {"scope": throttle.scope, "ident": user_pk}
        now = throttle.timer()
        throttle.queue(pipe, key, now)
        queued.append((key, now))
    if not queued:
        return None

    def take(replies: list) -> None:
        found = {}
        tail = replies[len(replies) - WINDOW_COMMANDS * len(queued) :]
        for i, (key, now) in enumerate(queued):
            part = tail[i * WINDOW_COMMANDS : (i + 1) * WINDOW_COMMANDS]
            found[key] = (now, *WindowCounterMixin.counts(part))
        setattr(request, PRELOADED, found)

    return take


class AnonThrottle(ClientIpThrottleMixin, WindowCounterMixin, AnonRateThrottle):
    pass


class UserThrottle(ClientIpThrottleMixin, WindowCounterMixin, UserRateThrottle):
    """Per user when signed in; per client address otherwise."""


class ScopedThrottle(ClientIpThrottleMixin, ScopedRateThrottle):
    """Per view scope (`throttle_scope`), per user or client address."""
