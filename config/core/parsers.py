"""The JSON body parser every endpoint uses (REST_FRAMEWORK DEFAULT_PARSER_CLASSES).

DRF's own parser hands the body to `json.load` as it is, so hostile JSON turns into 500s:
50,000 nested brackets raise RecursionError, `1e999` becomes an infinity the renderer then
refuses, `"\\u0000"` reaches PostgreSQL (which refuses NUL in text) and a lone surrogate
(`"\\ud800"`) fails when psycopg encodes it. This parser refuses all of those with 400 `invalid`
before a view sees the data:

- bodies over DATA_UPLOAD_MAX_MEMORY_SIZE: 413 `too_large` (config.core.limits refuses them
  earlier under ASGI; this covers every other way in, the test client included);
- bytes that are not UTF-8 (RFC 8259 requires it, whatever charset the client declares);
- nesting deeper than MAX_DEPTH, measured on the text *before* parsing, so no recursion ever
  happens on attacker-chosen depth;
- NaN, Infinity and numbers out of float range; integers longer than Python's digit limit;
- strings (keys included) holding U+0000 or unpaired surrogates.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from rest_framework import parsers

from .errors import Invalid, TooLarge

# No request body of this API nests more than a few levels; 32 leaves room for clients.
MAX_DEPTH = 32

# A JSON string literal (unrolled so long strings cost one pass, not one alternation per char).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON `text` opens more than `limit` arrays/objects inside one another.

    Brackets inside strings don't count. Runs in one pass with no recursion; malformed text
    may be misjudged, but then json.loads refuses it anyway."""
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(skeleton) <= limit:
        return False
    depth = 0
    for char in skeleton:
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:32]}")
    return value


def _check_strings(data: Any) -> None:
    """Refuses NUL and unpaired surrogates in any string of the parsed document."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise Invalid("Strings may not contain NUL (\\u0000) characters.")
            if _SURROGATE.search(item):
                raise Invalid("Strings may not contain unpaired surrogates.")


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise TooLarge(f"The JSON body is larger than {limit} bytes.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("The body is not valid UTF-8.") from None
        if nesting_exceeds(text, MAX_DEPTH):
            raise Invalid(f"JSON nested deeper than {MAX_DEPTH} levels is not accepted.")
        try:
            data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:  # unreachable after the depth check; kept as a last guard
            raise Invalid(f"JSON nested deeper than {MAX_DEPTH} levels is not accepted.") from None
        except ValueError as exc:
            # JSONDecodeError, NaN/Infinity, out-of-range floats, over-long integers.
            raise Invalid(f"JSON parse error: {str(exc)[:200]}") from None
        _check_strings(data)
        return data
