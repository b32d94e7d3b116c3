"""OpenAPI post-processing: every operation documents the error envelope, every list its paging.

Whatever status an endpoint refuses with, the body is `ErrorEnvelope` (API.md "Errors"); the
`default` response says so once per operation, so generated clients can decode any error.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from .pagination import DEFAULT_LIMIT, MAX_LIMIT

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


def _page_component(operation: dict, schemas: dict) -> bool:
    """Whether the operation's 200 body is a `{"results": [...], "next": ...}` page."""
    content = operation.get("responses", {}).get("200", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    properties = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
    return "results" in properties and "next" in properties


def document_list_paging(result, generator, request, public):
    """Every list states `cursor` and `limit`, and `limit` says it is at least 1.

    Lists are built by views calling `paginated_response` or `parse_limit` directly, so
    drf-spectacular does not see a paginator; without this a client (or a fuzzer) learns
    neither parameter, or learns `limit` without the `minimum` that `parse_limit` enforces.
    """
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Page size: default {DEFAULT_LIMIT}, at least 1, capped at {MAX_LIMIT}.",
        "schema": {"type": "integer", "minimum": 1},
    }
    cursor = {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "Opaque position from a previous page's `next`.",
        "schema": {"type": "string"},
    }
    schemas = result.get("components", {}).get("schemas", {})
    for path_item in result.get("paths", {}).values():
        operation = path_item.get("get")
        if not isinstance(operation, dict):
            continue
        parameters = operation.get("parameters", [])
        present = {(p.get("name"), p.get("in")) for p in parameters}
        if _page_component(operation, schemas):
            for parameter in (cursor, limit):
                if (parameter["name"], "query") not in present:
                    parameters.append(dict(parameter, schema=dict(parameter["schema"])))
        for parameter in parameters:
            if parameter.get("name") == "limit" and parameter.get("in") == "query":
                parameter.setdefault("schema", {"type": "integer"})["minimum"] = 1
        if parameters:
            operation["parameters"] = parameters
    return result


def forbid_unknown_request_fields(result, generator, request, public):
    """Request bodies say `additionalProperties: false`: the server refuses a key it does not
    know with 400 `invalid` naming it (config.core.fields.InputSerializer), and the schema
    states that contract so clients and fuzzers know it too."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result
