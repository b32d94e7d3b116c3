"""The ASGI handler for Django's HTTP side: the middleware chain and the view in one thread hop.

Every view and middleware in Riff is synchronous. Django's ASGI handler builds its chain for
async use anyway, so a request went event loop -> thread (sync middleware) -> event loop
(`_get_response_async`, through async_to_sync) -> thread again (the sync view), and each hop
is a handoff between threads and a wait for the GIL. On this project's `/healthz` that was
about half of the request's cost, and more under load (docs/bench-feed.md has the profile).

`OneHopASGIHandler` builds the synchronous chain (the one WSGI uses) and runs all of it in one
`sync_to_async` call. Everything else is Django's: the request's own thread
(`ThreadSensitiveContext`, so its database connection and `request_finished` stay together),
disconnect handling, streaming responses. An async view or middleware would still work
(Django adapts it with async_to_sync), just without the saving.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class OneHopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # The synchronous chain whatever the caller asks for; get_response_async runs it.
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
