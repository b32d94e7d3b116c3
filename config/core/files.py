"""File responses that stream under ASGI (uvicorn) as well as under WSGI.

Django's ASGI handler can only iterate a response asynchronously. Given a FileResponse (a sync
iterator) it reads the whole file into memory first and warns on every download
("StreamingHttpResponse must consume synchronous iterators"). These read one block at a time in
a worker thread instead. Under WSGI (and the test client) they are plain FileResponses.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import FileResponse, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncBlocksMixin:
    async def __aiter__(self):
        blocks = iter(self.streaming_content)
        while True:
            block = await sync_to_async(next, thread_sensitive=False)(blocks, None)
            if block is None:
                return
            yield block


class FileStream(AsyncBlocksMixin, FileResponse):
    """A FileResponse for views (video content downloads)."""


_STREAMED: dict[type, type] = {FileResponse: FileStream}


def streamed(response: HttpResponse) -> HttpResponse:
    """`response`, when a library built it as a FileResponse (Django's static `serve`,
    WhiteNoise), made to stream the same way: same object, headers and file; only how ASGI
    iterates it changes. Any other response (a 304, say) is returned as it is."""
    kind = type(response)
    if not isinstance(response, FileResponse) or isinstance(response, AsyncBlocksMixin):
        return response
    if kind not in _STREAMED:
        _STREAMED[kind] = type(f"Streamed{kind.__name__}", (AsyncBlocksMixin, kind), {})
    response.__class__ = _STREAMED[kind]
    return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, whose static files (the docs' Swagger UI and ReDoc bundles, the admin's)
    stream the same way under uvicorn."""

    @staticmethod
    def serve(static_file, request):
        return streamed(WhiteNoiseMiddleware.serve(static_file, request))
