"""Request body limits, enforced before anything reads the body.

Django's ASGIHandler reads the whole request body into a temporary file (memory, then disk)
before any middleware, view or parser runs, so a size check in a view comes after the damage:
an anonymous 512 MiB login once made a 504 MiB temp file. `BodyLimitMiddleware` wraps the
Django ASGI app (config/asgi.py) and refuses with 413 `too_large`, in the error envelope:

- at once, without reading a byte, when `Content-Length` declares more than the route allows
  (with `Expect: 100-continue` the client is never even told to send);
- as soon as the bytes actually received pass the limit (chunked bodies, or a
  `Content-Length` that lies); Django is then told the client went away, so it never builds a
  request and no view runs.

The limit depends on the route and on whether the request carries an `Authorization` header
(`settings.RIFF_BODY_LIMITS`, documented in docs/operations.md "Request body limits"). The
header is only looked at, not verified: a forged one buys the authenticated limit of that
route, still bounded, and the view's authentication then refuses it.

`BodyLimitGuard` is the same table as Django middleware, for what reaches Django some other way
(the test client, a WSGI server), plus a refusal of NUL characters in the path and query
string, which PostgreSQL cannot store or compare (a username `a%00b` was a 500).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .errors import envelope

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def body_limit(*, method: str, path: str, authenticated: bool) -> int:
    """The most body bytes a request may send: the first row of RIFF_BODY_LIMITS whose method
    and path match (`(methods, path regex, limit, anonymous limit)`), else the default."""
    for methods, pattern, limit, anonymous_limit in settings.RIFF_BODY_LIMITS:
        if (methods == "*" or method in methods.split(",")) and re.match(pattern, path):
            return limit if authenticated else anonymous_limit
    return settings.RIFF_BODY_MAX_BYTES if authenticated else settings.RIFF_BODY_MAX_BYTES_ANONYMOUS


def _too_large_message(limit: int) -> str:
    return f"The request body is larger than the {limit} bytes this endpoint accepts."


def _declared_length(values: Iterable[str | bytes | None]) -> int | None:
    """The declared Content-Length, or None when absent or unreadable (then only the count of
    received bytes protects; servers refuse malformed lengths before the app anyway)."""
    for value in values:
        if value is None:
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        text = text.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


class BodyLimitMiddleware:
    """ASGI middleware for the `http` scope; other scopes pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        limit = body_limit(
            method=scope.get("method", "GET"),
            path=path,
            authenticated=any(
                name == b"authorization" and value.strip() for name, value in headers
            ),
        )
        declared = _declared_length(value for name, value in headers if name == b"content-length")
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return

        received = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django (and any ASGI app) stops reading and answers nothing on a
                    # disconnect; the bytes past the limit are never handed on.
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, tracking_send)
        if over and not started:
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(envelope("too_large", _too_large_message(limit))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread rest of the body makes the connection unusable for another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitGuard:
    """Django middleware: the same limits on the declared length, and no NUL in path or query."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if refused := _nul_refusal(request):
            return refused
        limit = body_limit(
            method=request.method or "GET",
            path=request.path_info,
            authenticated=bool(request.META.get("HTTP_AUTHORIZATION", "").strip()),
        )
        declared = _declared_length([request.META.get("CONTENT_LENGTH")])
        if declared is not None and declared > limit:
            return JsonResponse(envelope("too_large", _too_large_message(limit)), status=413)
        return self.get_response(request)


def _nul_refusal(request: HttpRequest) -> HttpResponse | None:
    message = "The URL may not contain NUL (%00) characters."
    if "\x00" in request.path:
        return JsonResponse(envelope("invalid", message), status=400)
    for key, values in request.GET.lists():
        if "\x00" in key:
            return JsonResponse(envelope("invalid", message), status=400)
        if any("\x00" in value for value in values):
            fields = {key: ["May not contain NUL (%00) characters."]}
            return JsonResponse(envelope("invalid", message, fields), status=400)
    return None
