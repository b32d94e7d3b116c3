"""OpenAPI post-processing: every operation documents the error envelope.

Whatever status an endpoint refuses with, the body is `ErrorEnvelope` (API.md "Errors"); the
`default` response says so once per operation, so generated clients can decode any error.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

# The header of every endpoint API.md marks idempotent (accounts.idempotency.idempotent).
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Replays the first response for the same key and body (kept 24 h).",
)


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """`{status: "error envelope"}` for `extend_schema(responses=...)`."""
    return {code: OpenApiResponse(description="error envelope") for code in codes}


ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code."},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}


def add_error_envelope(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if str(code)[0] in "45" and "content" not in response:
                    response["content"] = {"application/json": {"schema": ref}}
            responses["default"] = {
                "description": "Error (see API.md: error envelope with a stable code)",
                "content": {"application/json": {"schema": ref}},
            }
    return result
