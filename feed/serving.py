"""`serve_id`: the name of one feed impression, signed so clients can't invent them.

Format: `<reason>.<token>.<sig>`: the reason code the item was served for (a source such as
`following`, `cameo_graph`, or `card-remix_this` for a creation card), a random token for this
one item, and an HMAC over the viewer, the reason and the token. Events and generations that
carry a serve_id are verified without a lookup (a serve_id only counts for the user it was
served to), and creation metrics read the source straight out of the stored id. Impressions are
counted once per serve_id (feed.services.events_record dedupes in Redis).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from django.conf import settings

SERVE_ID_RE = re.compile(r"^([a-z0-9_-]{1,32})\.([0-9a-f]{12})\.([0-9a-f]{16})$")


@dataclass(frozen=True)
class ServeId:
    reason: str
    token: str


@functools.lru_cache(maxsize=4)
def _keyed(secret: str):
    """The HMAC keyed once per secret; each signature works on a copy."""
    return hmac.new(f"riff-serve:{secret}".encode(), digestmod=hashlib.sha256)


def _sig(user_id, reason: str, token: str) -> str:
    mac = _keyed(settings.SECRET_KEY).copy()
    mac.update(f"{user_id}|{reason}|{token}".encode())
    return mac.hexdigest()[:16]


def serve_id_make(*, user_id, reason: str) -> str:
    """A fresh serve_id for one item served to `user_id` for `reason` ([a-z0-9_-], ≤32)."""
    return serve_ids_make(user_id=user_id, reasons=[reason])[0]


def serve_ids_make(*, user_id, reasons: list[str]) -> list[str]:
    """A fresh serve_id for each of a page's items: the random tokens of a whole page come from
    one read of the system's random source, not one each (a system call per item was 4-5 % of a
    feed page's profile, docs/bench-feed.md)."""
    raw = secrets.token_bytes(6 * len(reasons)).hex()
    tokens = [raw[12 * i : 12 * i + 12] for i in range(len(reasons))]
    # `_sig`, with what is the same for every item (the key, the viewer's id as text: a UUID's
    # str() is Python code) worked out once per page.
    keyed, viewer = _keyed(settings.SECRET_KEY), str(user_id)
    out = []
    for reason, token in zip(reasons, tokens, strict=True):
        mac = keyed.copy()
        mac.update(f"{viewer}|{reason}|{token}".encode())
        out.append(f"{reason}.{token}.{mac.hexdigest()[:16]}")
    return out


def serve_id_parse(value: str, *, user_id) -> ServeId | None:
    """The reason and token if `value` was served to this user, else None."""
    match = SERVE_ID_RE.match(value or "")
    if match is None:
        return None
    reason, token, sig = match.groups()
    if not hmac.compare_digest(sig, _sig(user_id, reason, token)):
        return None
    return ServeId(reason=reason, token=token)


def serve_id_reason(value: str) -> str:
    """The reason part, unverified (for aggregate metrics over stored, verified ids)."""
    match = SERVE_ID_RE.match(value or "")
    return match.group(1) if match else ""
