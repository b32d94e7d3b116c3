"""OpenAPI post-processing: every operation documents the error envelope.

Whatever status an endpoint refuses with, the body is `ErrorEnvelope` (API.md "Errors"); the
`default` response says so once per operation, so generated clients can decode any error.
"""

from __future__ import annotations

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
