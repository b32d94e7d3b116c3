"""Keyset ("cursor") pagination: `{"results": [...], "next": url | null}`.

The position is the ordering tuple of the last row sent, e.g. `(created_at, id)`, sealed in an
opaque cursor. Unlike offsets it never skips or repeats rows when new ones arrive, and each page
is one index range scan however deep the client scrolls.

Views choose the ordering with `pagination_ordering = ("-created_at", "-id")` (all fields in
the same direction; the last must be unique).

Cursors are client input that ends up in ORM filters, so they are sealed, not just encoded:
AES-GCM under a key derived from SECRET_KEY, with the list's *scope* (which list, at which path)
as associated data. A client can neither read a cursor (no row ids or timestamps leak) nor forge
or edit one, and a cursor minted for one list is refused on another. Even so every decoded value
is type-checked against what the ordering expects before it reaches a query. Any failure is
400 `invalid` with `fields.cursor`; a client that gets one starts again from the first page.
Rotating SECRET_KEY (with the old key in SECRET_KEY_FALLBACKS) keeps live cursors working.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, Q, QuerySet
from django.utils.crypto import salted_hmac
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from .errors import Invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

# A real cursor is ~140 characters; anything much longer is refused before decoding.
CURSOR_MAX_CHARS = 512
# Random 96-bit nonces. A repeat (odds ~2^-32 after 2^32 cursors under one key) would at worst
# let someone forge cursors, which still pass the type checks below and only move a client
# within a list it may read anyway.
_NONCE = 12
_TAG = 16
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
# Decoded `str` values (a For You session id) are short tokens.
_STR_MAX = 128
_INT_MAX = 2**63 - 1  # PostgreSQL bigint


def _bad_cursor() -> Invalid:
    return Invalid("The cursor is not valid.", fields={"cursor": ["Not a valid cursor."]})


@functools.lru_cache(maxsize=8)
def _aead(secret: str) -> AESGCM:
    key = salted_hmac("riff.pagination.cursor", "aes-256-gcm", secret=secret, algorithm="sha256")
    return AESGCM(key.digest())


def _secrets() -> list[str]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"cannot put {type(value).__name__} in a cursor")
    return value


def _typed(value: Any, kind: type) -> Any:
    """`value` as `kind`, or raise `_bad_cursor()`: the query only ever sees the expected type."""
    if kind is datetime:
        if isinstance(value, str) and len(value) <= 64:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            # A naive datetime would be compared in the server's zone; we only ever write aware.
            if parsed is not None and parsed.tzinfo is not None:
                return parsed
    elif kind is uuid.UUID:
        if isinstance(value, str) and len(value) == 36:
            try:
                return uuid.UUID(value)
            except ValueError:
                pass
    elif kind is int:
        if type(value) is int and 0 <= value <= _INT_MAX:
            return value
    elif kind is str:
        if isinstance(value, str) and len(value) <= _STR_MAX and "\x00" not in value:
            return value
    else:
        raise ImproperlyConfigured(f"cursor values cannot be of type {kind!r}")
    raise _bad_cursor()


def cursor_scope(name: str, request: Request) -> str:
    """The scope of the list `name` at this request's path: a cursor opens only the list (and,
    for per-object lists such as a post's comments, the object) that minted it."""
    return f"{name}|{request.path}"


def encode_cursor(values: Sequence[Any], *, scope: str) -> str:
    """Seals `values` (datetime, UUID, int >= 0 or short str) into an opaque URL-safe cursor."""
    payload = json.dumps([_plain(v) for v in values], separators=(",", ":")).encode()
    nonce = os.urandom(_NONCE)
    sealed = _aead(settings.SECRET_KEY).encrypt(nonce, payload, _aad(scope))
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def decode_cursor(cursor: str, *, scope: str, types: Sequence[type]) -> list[Any]:
    """The values `encode_cursor(values, scope=scope)` sealed, each checked to be of the type
    in `types`. Raises `Invalid` (400, `fields.cursor`) for anything else."""
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX_CHARS:
        raise _bad_cursor()
    if not _B64URL.fullmatch(cursor) or len(cursor) % 4 == 1:
        raise _bad_cursor()
    blob = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    if len(blob) <= _NONCE + _TAG:
        raise _bad_cursor()
    payload = None
    for secret in _secrets():
        try:
            payload = _aead(secret).decrypt(blob[:_NONCE], blob[_NONCE:], _aad(scope))
            break
        except InvalidTag:
            continue
    if payload is None:
        raise _bad_cursor()
    try:
        values = json.loads(payload)
    except ValueError:
        raise _bad_cursor() from None
    if not isinstance(values, list) or len(values) != len(types):
        raise _bad_cursor()
    return [_typed(value, kind) for value, kind in zip(values, types, strict=True)]


def cursor_opens(cursor: str, *, scope: str, types: Sequence[type]) -> bool:
    """Whether `cursor` is a valid cursor of `scope` (no error raised)."""
    try:
        decode_cursor(cursor, scope=scope, types=types)
    except Invalid:
        return False
    return True


def _aad(scope: str) -> bytes:
    return scope.encode("utf-8", "backslashreplace")


_FIELD_TYPES: dict[str, type] = {
    "DateTimeField": datetime,
    "UUIDField": uuid.UUID,
    "AutoField": int,
    "BigAutoField": int,
    "SmallAutoField": int,
    "IntegerField": int,
    "BigIntegerField": int,
    "SmallIntegerField": int,
    "PositiveIntegerField": int,
    "PositiveBigIntegerField": int,
    "PositiveSmallIntegerField": int,
}


def ordering_types(model: type[Model], ordering: Sequence[str]) -> tuple[type, ...]:
    """The Python type of each ordering field (`"-created_at"`, `"follower_id"`,
    `"video__created_at"`), which is what a decoded cursor value must be."""
    kinds = []
    for name in ordering:
        current, field = model, None
        for part in name.lstrip("-").split("__"):
            field = current._meta.get_field(part)
            if field.is_relation and field.related_model is not None:
                current = field.related_model
        if field.is_relation:
            field = field.target_field
        internal = field.get_internal_type()
        if internal not in _FIELD_TYPES:
            raise ImproperlyConfigured(f"cannot page {model.__name__} by {name} ({internal})")
        kinds.append(_FIELD_TYPES[internal])
    return tuple(kinds)


def parse_limit(request: Request, default: int = DEFAULT_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return default
    try:
        # A page size has a few digits; the cap keeps int() off megabyte-long numbers.
        if len(raw) > 12:
            raise ValueError
        limit = int(raw)
    except ValueError:
        raise Invalid("limit must be an integer.", fields={"limit": ["Must be an integer."]})
    if limit < 1:
        raise Invalid("limit must be at least 1.", fields={"limit": ["Must be at least 1."]})
    return min(limit, MAX_LIMIT)


def keyset_filter(fields: tuple[str, ...], values: list[Any]) -> Q:
    """Rows strictly after `values` in the order given by `fields` (same direction)."""
    descending = fields[0].startswith("-")
    names = [f.lstrip("-") for f in fields]
    op = "lt" if descending else "gt"
    condition = Q()
    for i, name in enumerate(names):
        prefix = {names[j]: values[j] for j in range(i)}
        condition |= Q(**prefix, **{f"{name}__{op}": values[i]})
    return condition


def next_link(request: Request, cursor: str | None, limit: int) -> str | None:
    """This request's URL with `cursor` and `limit` replaced (None when there is no next)."""
    if not cursor:
        return None
    # The query's keys in order, each with its last value (what urlencode takes from a
    # QueryDict), without QueryDict.copy()'s deep copy.
    params = dict(request.query_params.items())
    params["cursor"] = cursor
    params["limit"] = str(limit)
    return request.build_absolute_uri(request.path) + "?" + urlencode(params, doseq=True)


class KeysetPagination(BasePagination):
    """Views may set `pagination_ordering` and `cursor_name` (the list's name in its cursor
    scope; default: the view class)."""

    default_ordering: tuple[str, ...] = ("-created_at", "-id")

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: Any = None):
        self.request = request
        self.ordering = tuple(getattr(view, "pagination_ordering", self.default_ordering))
        self.limit = parse_limit(request)
        name = getattr(view, "cursor_name", None) or (
            f"{type(view).__module__}.{type(view).__qualname__}" if view is not None else "list"
        )
        scope = cursor_scope(name, request)
        cursor = request.query_params.get("cursor")
        queryset = queryset.order_by(*self.ordering)
        if cursor:
            types = ordering_types(queryset.model, self.ordering)
            after = decode_cursor(cursor, scope=scope, types=types)
            queryset = queryset.filter(keyset_filter(self.ordering, after))
        rows = list(queryset[: self.limit + 1])
        self.has_next = len(rows) > self.limit
        rows = rows[: self.limit]
        self.next_cursor = None
        if self.has_next and rows:
            last = rows[-1]
            self.next_cursor = encode_cursor(
                [_attr(last, f.lstrip("-")) for f in self.ordering], scope=scope
            )
        return rows

    def get_next_link(self) -> str | None:
        return next_link(self.request, self.next_cursor, self.limit)

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "cursor",
                "required": False,
                "in": "query",
                "description": "Opaque position from a previous page's `next`.",
                "schema": {"type": "string"},
            },
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": f"Page size (default {DEFAULT_LIMIT}); values above {MAX_LIMIT} are capped.",
                "schema": {"type": "integer", "minimum": 1},
            },
        ]


def _attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("__"):
        obj = getattr(obj, part)
    return obj


_PAGE_SERIALIZERS: dict[str, Any] = {}


def page_of(serializer_class: type) -> Any:
    """Schema helper: the `{"results": [...], "next": ...}` page of `serializer_class`."""
    from rest_framework import serializers

    name = f"Paginated{serializer_class.__name__}List"
    if name not in _PAGE_SERIALIZERS:
        _PAGE_SERIALIZERS[name] = type(
            name,
            (serializers.Serializer,),
            {
                "results": serializer_class(many=True),
                "next": serializers.URLField(allow_null=True),
                "__module__": __name__,
            },
        )
    return _PAGE_SERIALIZERS[name]


def paginated_response(
    view: Any, request: Request, queryset: QuerySet, serializer_class: type
) -> Response:
    """One keyset page of `queryset` serialized with `serializer_class`, in the list envelope."""
    return paginated_rows(
        view,
        request,
        queryset,
        lambda page: serializer_class(page, many=True, context={"request": request}).data,
    )


def paginated_rows(view: Any, request: Request, queryset: QuerySet, render: Any) -> Response:
    """One keyset page of `queryset`, each page of rows turned into items by `render(rows)`
    (for views whose items are built by selectors rather than a model serializer)."""
    paginator = KeysetPagination()
    page = paginator.paginate_queryset(queryset, request, view)
    return paginator.get_paginated_response(render(page))
