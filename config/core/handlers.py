"""The ASGI handler for Django's HTTP side: one reused thread per request, one hop into it.

Every view and middleware in Riff is synchronous, and Django's ASGI handler costs them twice
(docs/bench-feed.md has the profile):

- it builds the middleware chain for async use, so a request went event loop -> thread (sync
  middleware) -> event loop (`_get_response_async`, through async_to_sync) -> thread again (the
  sync view): three handoffs between threads, each a wait for the GIL;
- it gives each request a `ThreadSensitiveContext` of its own, and asgiref starts (and joins)
  a new OS thread for each such context: on `/healthz` that was over half the request's CPU.

`OneHopASGIHandler` builds the synchronous chain (the one WSGI uses) and runs all of it in one
`sync_to_async` call, in a thread taken from a free list of single-thread executors and handed
back when the request ends (asgiref's `ThreadSensitiveContext(executor=...)`). Everything a
request does synchronously (`request_started`, the chain, the view, `response.close()` and
`request_finished`, so its database connection is taken and given back by the same thread)
still runs in one thread that no other request uses meanwhile: the same guarantees as
Django's handler, without a thread per request. An async view or middleware would still work
(Django adapts it with async_to_sync), just without the saving.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

# Executors kept for reuse beyond this many would be threads idle for good: shut them down.
MAX_IDLE_THREADS = 64


class _Threads:
    """Single-thread executors, one per request in flight, reused across requests."""

    def __init__(self) -> None:
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="riff-request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_THREADS:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)


class OneHopASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        self._threads = _Threads()
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        # The synchronous chain whatever the caller asks for; get_response_async runs it.
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._threads.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._threads.give_back(executor)
