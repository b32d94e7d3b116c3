"""One error envelope for every failure (API.md "Errors").

`{"error": {"code": "...", "message": "...", "fields": {...}}}` with a stable `code`.
Services raise `ApiError` subclasses (or Django/DRF exceptions); `exception_handler` turns
whatever reaches the view layer into the envelope, and `json_404`/`json_500` cover the
requests that never reach DRF. Under `/api/` and `/v1/` the envelope answers in DEBUG too
(`api_not_found`, `ApiErrorsMiddleware`).
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis.exceptions
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponsePermanentRedirect, JsonResponse
from django.urls import get_urlconf, is_valid_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error with a stable code. Subclass it or instantiate with a code."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"
    default_detail = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.default_detail, code or self.default_code)
        self.code = code or self.default_code
        self.fields = fields
        self.headers = headers or {}
        if status_code is not None:
            self.status_code = status_code


class Invalid(ApiError):
    status_code = 400
    default_code = "invalid"
    default_detail = "The request is invalid."


class Forbidden(ApiError):
    status_code = 403
    default_code = "permission_denied"
    default_detail = "You do not have permission to do this."


class NotFound(ApiError):
    status_code = 404
    default_code = "not_found"
    default_detail = "Not found."


class Conflict(ApiError):
    status_code = 409
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


class TooLarge(ApiError):
    status_code = 413
    default_code = "too_large"
    default_detail = "The upload is too large."


class UnsupportedMedia(ApiError):
    status_code = 415
    default_code = "unsupported_media"
    default_detail = "This media type is not supported."


# Django's own refusals of an oversized body (DATA_UPLOAD_MAX_MEMORY_SIZE, _NUMBER_FIELDS,
# _NUMBER_FILES). Django files them under SuspiciousOperation (a 400); to a client they are the
# same thing as the body limits of config.core.limits, so they answer 413 `too_large` too.
TOO_LARGE_ERRORS = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


class Unavailable(ApiError):
    status_code = 503
    default_code = "unavailable"
    default_detail = "The service is temporarily unavailable."


# Redis or the Celery broker unreachable, too slow, or refusing writes (a failover, out of
# memory). What can do without Redis degrades on its own (config.core.redis); whatever still reaches
# a view answers 503 `unavailable` with Retry-After, never 500.
BACKEND_DOWN_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    kombu.exceptions.OperationalError,
)
BACKEND_RETRY_AFTER_SECONDS = 5  # a restart or failover of Redis takes seconds


def backend_unavailable() -> Unavailable:
    return Unavailable(
        "This is temporarily unavailable; try again in a few seconds.",
        headers={"Retry-After": str(BACKEND_RETRY_AFTER_SECONDS)},
    )


_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "invalid",
    exceptions.ValidationError: "invalid",
}


def envelope(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Serializer errors (nested dicts/lists) -> {"field.sub": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten_fields(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                out.update(_flatten_fields(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _first_message(fields: dict[str, list[str]]) -> str:
    for name, messages in fields.items():
        if messages:
            return messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
    return "The request is invalid."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = Forbidden()
    elif isinstance(exc, TOO_LARGE_ERRORS):
        exc = TooLarge("The request body is too large.")
    elif isinstance(exc, SuspiciousOperation):
        logger.warning("suspicious request refused: %s", exc)
        exc = Invalid("The request is invalid.")
    elif isinstance(exc, BACKEND_DOWN_ERRORS):
        request = context.get("request")
        logger.warning("redis/broker down on %s: %r", getattr(request, "path", "?"), exc)
        exc = backend_unavailable()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )

    if isinstance(exc, ApiError):
        body = envelope(exc.code, str(exc.detail), exc.fields)
        headers.update(exc.headers)
        status_code = exc.status_code
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        body = envelope("invalid", _first_message(fields), fields)
        status_code = 400
    elif isinstance(exc, exceptions.APIException):
        code = next((c for t, c in _DRF_CODES.items() if isinstance(exc, t)), None)
        if code is None:
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else "error"
        message = str(exc.detail) if not isinstance(exc.detail, dict | list) else exc.default_detail
        body = envelope(code, str(message))
        status_code = exc.status_code
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    else:
        request = context.get("request")
        logger.exception("unhandled error on %s", getattr(request, "path", "?"), exc_info=exc)
        body = envelope("server_error", "Something went wrong on our side.")
        status_code = 500

    if status_code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    return Response(body, status=status_code, headers=headers)


def json_404(request, exception=None):  # noqa: ARG001 - Django's handler signature
    return JsonResponse(envelope("not_found", "Not found."), status=404)


def json_500(request):  # noqa: ARG001
    return JsonResponse(envelope("server_error", "Something went wrong on our side."), status=500)


def json_403(request, exception=None):  # noqa: ARG001
    return JsonResponse(envelope("permission_denied", "Forbidden."), status=403)


def json_400(request, exception=None):  # noqa: ARG001
    # Django answers its SuspiciousOperations here (outside DRF: the admin's forms, say).
    if isinstance(exception, TOO_LARGE_ERRORS):
        return JsonResponse(envelope("too_large", "The request body is too large."), status=413)
    return JsonResponse(envelope("invalid", "Bad request."), status=400)


# Everything under these prefixes is API: its errors are the envelope, DEBUG or not. Django's
# DEBUG pages (an HTML 404 listing every URL pattern, an HTML traceback) never answer here.
API_PREFIXES = ("/api/", "/v1/")


@csrf_exempt  # a POST to an unknown path is a 404, not a CSRF refusal page
def api_not_found(request, *args, **kwargs):  # noqa: ARG001 - any route shape lands here
    """The last route under each API prefix: whatever no other route matched (an unknown path,
    a malformed UUID in a path) is the envelope's 404. Like APPEND_SLASH, a GET that only lacks
    its trailing slash (`/api/docs`) is redirected to the page that has it."""
    path = request.path_info
    if request.method in ("GET", "HEAD") and not path.endswith("/"):
        match = is_valid_path(f"{path}/", get_urlconf())
        if match and match.func is not api_not_found:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return json_404(request)


# The envelope for an error status some other layer answered in HTML.
_STATUS_ERRORS = {
    400: ("invalid", "Bad request."),
    403: ("permission_denied", "Forbidden."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("too_large", "The request body is too large."),
}


class ApiErrorsMiddleware:
    """Near the top of MIDDLEWARE: under the API prefixes an error answered with anything but
    JSON becomes the envelope with the same status. Routes and DRF views answer JSON already;
    this covers what Django answers itself, which in DEBUG is an HTML page (a bad Host header,
    an exception in a middleware or in a view outside DRF). The log keeps the details."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path_info.startswith(API_PREFIXES)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            status_code = response.status_code
            code, message = _STATUS_ERRORS.get(status_code, ("error", response.reason_phrase))
            if status_code >= 500:
                code, message = "server_error", "Something went wrong on our side."
            enveloped = JsonResponse(envelope(code, message), status=status_code)
            for header in ("Retry-After", "Allow", "WWW-Authenticate"):
                if response.has_header(header):
                    enveloped[header] = response[header]
            enveloped["Cache-Control"] = "no-store"
            response.close()
            return enveloped
        return response
