"""JSON bodies written without DRF's Response and renderer, byte for byte what they write.

For the hottest reads (docs/bench-feed.md): a DRF `Response` is a template response rendered
by the middleware chain's end, its renderer picked per request; building and rendering one
was ~10 % of `GET /me`. A body of plain data (dicts, lists, str, numbers, bools, None) goes
out as `json_response(data)` (`GET /me`), and DRF's view machinery (authentication,
throttles, the error envelope, `Allow`) is unchanged around it. Feed pages splice cached
posts' JSON into theirs with `json_plain` (feed.hydrate, feed.feeds.feed_response).
"""

from __future__ import annotations

import json

from django.http import HttpResponse

# DRF's JSONRenderer's settings (compact, UTF-8 as it is, no NaN), made once: `json.dumps` with
# arguments builds an encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_plain(value) -> bytes:
    """`value` as DRF's JSONRenderer writes it (UTF-8, compact, U+2028/9 escaped as it escapes
    them for embedding in JavaScript). Plain data only: no datetimes, UUIDs or decimals."""
    text = _ENCODER.encode(value)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def json_response(value, *, status: int = 200) -> HttpResponse:
    """An HttpResponse of `json_plain(value)`, with the Content-Type DRF's renderer sets."""
    return HttpResponse(json_plain(value), content_type="application/json", status=status)
