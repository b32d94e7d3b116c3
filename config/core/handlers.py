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

One hop, not three: Django's `handle` sends `request_started`, runs the chain and calls
`response.close()` in three `sync_to_async` calls, each two wake-ups across threads, and
watches for a disconnect with two tasks per request. Here a response already in memory (every
API answer) is built and closed in the one hop and then sent; only a stream (a file, a
generator) is sent while watching for the client to go, and closed after, as Django does. The
closing before sending is what `request_finished` observers see: the response is complete, and
the connection back in its pool, before its bytes leave. Measured from outside (uvicorn, one
worker, 4 connections, alternating, docs/bench-feed.md): server CPU per request `/healthz`
1.06-1.09 -> 0.60-0.77 ms, `GET /me` 1.97-2.02 -> 1.62-1.66, a Latest page 4.2-4.8 -> 3.2-3.6.

No hop at all with `RIFF_ASGI_INLINE`: the synchronous work runs on the event loop's thread,
one request at a time per process, the way a synchronous (WSGI) worker serves. A hop costs
more than its wake-ups: each database or Redis round trip of the request thread gives up the
GIL, and getting it back from the loop's thread costs CPU in every process that serves
several connections. Measured the same way (`config/devtools/bench/quick.py server`,
alternating): `/healthz` 0.64 -> 0.33-0.35 ms, `/me` 1.52-1.65 -> 0.88-1.12, a Latest page
3.8-4.3 -> 2.9-3.0. What it gives up: while one request waits on PostgreSQL, the process
serves no other, so run more workers (two per core); and a slow request (a first For You
visit ranks in the request, tens of ms) holds its process's other connections, websockets
included, for that long. Streams (files) are still sent by the loop, block by block.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import get_resolver, set_script_prefix


def settle_heap() -> None:
    """Loads what the first requests would (every URL pattern, so every view module), then
    moves all that lives now out of the cyclic garbage collector's sight (`gc.freeze`): the
    settings, apps, models, URL patterns and views live as long as the process, and without
    this each full collection, which the caches' growth sets off every few thousand requests,
    walked them all again (in process, a Latest page spent 43 us of its ~700 in those
    collections, each one a pause of ~100 ms; 7 us after). Call once, at start-up (config.asgi).
    """
    get_resolver().url_patterns  # noqa: B018 - resolving the includes imports the views
    gc.collect()
    gc.freeze()


@functools.lru_cache(maxsize=2048)
def _resolved(resolver, path: str):
    # Keyed by the resolver too: a changed ROOT_URLCONF (tests) is a different resolver. A path
    # that resolves to nothing raises, and raising is not cached.
    return resolver.resolve(path)


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


def _inline(fn, *args):
    """`fn(*args)` on this thread, the event loop's, as synchronous code: while it runs, the
    thread has no running loop, so Django's ORM does not refuse it (`async_unsafe`) and
    `async_to_sync` inside it runs its coroutine on a loop of its own, as in any synchronous
    worker. The loop is restored however `fn` ends."""
    loop = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        return fn(*args)
    finally:
        asyncio.events._set_running_loop(loop)


class OneHopASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        self._threads = _Threads()
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        # The synchronous chain whatever the caller asks for; get_response_async runs it.
        super().load_middleware(is_async=False)

    def resolve_request(self, request):
        """Django's, with each path's match kept (`_resolved`): resolving walks the URL
        patterns in order and records every one tried, 15-35 us for the API's hot paths, the
        same work for every request to one path. A match is read-only for everything here (the
        view gets its own copy of the keyword arguments)."""
        if hasattr(request, "urlconf"):
            return super().resolve_request(request)
        match = _resolved(get_resolver(), request.path_info)
        request.resolver_match = match
        return match

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)

    def _respond(self, scope, body_file):
        """Everything synchronous a request does, in its thread: `request_started`, the
        request, the chain, and for a response already in memory `close()` (so
        `request_finished`, and the database connection going back to its pool) too."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            if settings.RIFF_ASGI_INLINE:
                response = _inline(self._respond, scope, body_file)
            else:
                response = await sync_to_async(self._respond, thread_sensitive=True)(
                    scope, body_file
                )
            if not response.streaming:
                # Already closed: sending is all that is left, and a client gone meanwhile
                # costs nothing more than the send.
                await self.send_response(response, send)
                return
            # A stream (a file, a generator) stops when the client goes, as in Django.
            await self._stream(response, receive, send)
        finally:
            body_file.close()

    async def _stream(self, response, receive, send):
        sending = asyncio.ensure_future(self.send_response(response, send))
        listening = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait([sending, listening], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listening, sending):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                    await task
            await sync_to_async(response.close, thread_sensitive=True)()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._threads.take()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._threads.give_back(executor)
