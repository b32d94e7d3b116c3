"""Errors under `/v1/` (the OpenAI-compatible Videos API) in OpenAI's shape.

Everywhere else Riff answers `{"error": {"code", "message", "fields"?}}` (API.md). Clients
written for OpenAI read `{"error": {"message", "type", "param", "code"}}` instead, and the
official package picks its exception class from the status alone. So the whole of Riff keeps
raising its own errors, and this middleware, outermost under `/v1/`, rewrites each error
envelope on the way out: the status and Riff's stable code are kept, `type` is derived from
the status, and `param` is the first field the envelope named. One place, so every error a
`/v1/` request can meet (a view's, a throttle's, the body limit's, an unknown path's, a 500's)
comes out in the same shape.
"""

from __future__ import annotations

import json

from django.http import JsonResponse

PREFIX = "/v1/"

# OpenAI's error `type` for each status (what its own API sent for the same situations).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(status: int, message: str, *, code: str | None, param: str | None = None) -> dict:
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if code == "quota_exceeded":
        # What OpenAI answered when an account had nothing left to spend.
        error_type = "insufficient_quota"
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def from_envelope(status: int, body: dict) -> dict:
    """Riff's envelope -> OpenAI's shape (a body that is neither passes through as a message)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or "message" not in error:
        return openai_error(status, "The request failed.", code=None)
    if "type" in error and "param" in error:
        return body  # already OpenAI's shape
    fields = error.get("fields") or {}
    param = next(iter(fields), None) if isinstance(fields, dict) else None
    if param == "non_field_errors":
        param = None
    return openai_error(status, str(error["message"]), code=error.get("code"), param=param)


class OpenAIErrorsMiddleware:
    """Outermost in MIDDLEWARE: under /v1/, a JSON error body becomes OpenAI's shape."""

    HEADERS = ("Retry-After", "Allow", "WWW-Authenticate", "Cache-Control")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path_info.startswith(PREFIX)
            or not response.get("Content-Type", "").startswith("application/json")
            or getattr(response, "streaming", False)
        ):
            return response
        try:
            body = json.loads(response.content or b"{}")
        except ValueError:
            body = {}
        rewritten = JsonResponse(
            from_envelope(response.status_code, body), status=response.status_code
        )
        for header in self.HEADERS:
            if response.has_header(header):
                rewritten[header] = response[header]
        # Not `response.close()`: that sends `request_finished` (closing the database
        # connection mid-request); the handler closes the response it gets back, once.
        return rewritten
