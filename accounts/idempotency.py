"""`Idempotency-Key` for POST endpoints (API.md): scoped per caller, kept at least 24 hours.

Same key + same body -> the first response replayed. Same key + another body -> 422
`idempotency_mismatch`. Same key while the first request is still running -> 409. The claim on
a key is committed before the view runs, so two concurrent requests can't both run it; a 5xx
releases the key so the client may retry, and a claim abandoned by a crashed process is taken
over after `STALE_AFTER`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from config.core.errors import ApiError, Conflict, Invalid

from .models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
STALE_AFTER = timedelta(minutes=5)
KEEP_FOR = timedelta(hours=48)


def _fingerprint(request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        body = repr(request.data)
    raw = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _claim(user, key: str, fingerprint: str) -> IdempotencyRecord | Response:
    """Claims the key (committed at once) or returns what the earlier request decided."""
    for _ in range(2):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(user=user, key=key, fingerprint=fingerprint)
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if existing is None:
            continue  # released between our insert and our read: try again
        if existing.fingerprint != fingerprint:
            raise ApiError(
                "This Idempotency-Key was used with a different request.",
                code="idempotency_mismatch",
                status_code=422,
            )
        if existing.state == IdempotencyRecord.State.DONE:
            return Response(
                existing.response_body,
                status=existing.response_status,
                headers={"Idempotent-Replayed": "true"},
            )
        if timezone.now() - existing.updated_at > STALE_AFTER:
            taken = IdempotencyRecord.objects.filter(
                pk=existing.pk, updated_at=existing.updated_at
            ).update(updated_at=timezone.now())
            if taken:
                return IdempotencyRecord.objects.get(pk=existing.pk)
        raise Conflict(
            "A request with this Idempotency-Key is still being processed.", code="conflict"
        )
    raise Conflict("A request with this Idempotency-Key is still being processed.", code="conflict")


def idempotent(view_method):
    """Decorates an APIView's `post`. Without the header the view runs as usual."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.META.get(HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        if not key or len(key) > 255 or not key.isprintable():
            raise Invalid(
                "Idempotency-Key must be 1-255 printable characters.",
                fields={"Idempotency-Key": ["Invalid."]},
            )
        claimed = _claim(request.user, key, _fingerprint(request))
        if isinstance(claimed, Response):
            return claimed
        try:
            response = view_method(self, request, *args, **kwargs)
        except ApiError as exc:
            # A refusal is an answer too: replay it (a 429 is not, the client should retry later).
            if exc.status_code in (429, 503):
                claimed.delete()
                raise
            from config.core.errors import envelope

            _finish(claimed, exc.status_code, envelope(exc.code, str(exc.detail), exc.fields))
            raise
        except BaseException:
            claimed.delete()
            raise
        if response.status_code >= 500 or response.status_code == 429:
            claimed.delete()
        else:
            _finish(claimed, response.status_code, response.data)
        return response

    return wrapper


def _finish(record: IdempotencyRecord, status: int, body) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.State.DONE,
        response_status=status,
        response_body=body,
        updated_at=timezone.now(),
    )


def purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - KEEP_FOR).delete()
    return deleted
