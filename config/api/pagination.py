"""Keyset ("cursor") pagination: `{"results": [...], "next": url | null}`.

The position is the ordering tuple of the last row sent, e.g. `(created_at, id)`, encoded in an
opaque cursor. Unlike offsets it never skips or repeats rows when new ones arrive, and each page
is one index range scan however deep the client scrolls.

Views choose the ordering with `pagination_ordering = ("-created_at", "-id")` (all fields in
the same direction; the last must be unique).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from .errors import Invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        if "u" in value:
            return uuid.UUID(value["u"])
    return value


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != size:
            raise ValueError
        return [_decode_value(v) for v in values]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise Invalid(
            "The cursor is not valid.", fields={"cursor": ["Not a valid cursor."]}
        ) from exc


def parse_limit(request: Request, default: int = DEFAULT_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return default
    try:
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
    params = request.query_params.copy()
    params["cursor"] = cursor
    params["limit"] = str(limit)
    return request.build_absolute_uri(request.path) + "?" + urlencode(params, doseq=True)


class KeysetPagination(BasePagination):
    default_ordering: tuple[str, ...] = ("-created_at", "-id")

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: Any = None):
        self.request = request
        self.ordering = tuple(getattr(view, "pagination_ordering", self.default_ordering))
        self.limit = parse_limit(request)
        cursor = request.query_params.get("cursor")
        queryset = queryset.order_by(*self.ordering)
        if cursor:
            queryset = queryset.filter(
                keyset_filter(self.ordering, decode_cursor(cursor, len(self.ordering)))
            )
        rows = list(queryset[: self.limit + 1])
        self.has_next = len(rows) > self.limit
        rows = rows[: self.limit]
        self.next_cursor = None
        if self.has_next and rows:
            last = rows[-1]
            self.next_cursor = encode_cursor([_attr(last, f.lstrip("-")) for f in self.ordering])
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
    paginator = KeysetPagination()
    page = paginator.paginate_queryset(queryset, request, view)
    data = serializer_class(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)
