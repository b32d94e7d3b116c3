"""`serve_id`: the name of one feed impression, signed so clients can't invent them.

Format: `<reason>.<token>.<sig>`: the reason code the item was served for (a source such as
`following`, `cameo_graph`, or `card-remix_this` for a creation card), a random token for this
one item, and an HMAC over the viewer, the reason and the token. Events and generations that
carry a serve_id are verified without a lookup (a serve_id only counts for the user it was
served to), and creation metrics read the source straight out of the stored id. Impressions are
counted once per serve_id (feed.services.events_record dedupes in Redis).
"""

from __future__ import annotations

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


def _sig(user_id, reason: str, token: str) -> str:
    key = f"riff-serve:{settings.SECRET_KEY}".encode()
    msg = f"{user_id}|{reason}|{token}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:16]


def serve_id_make(*, user_id, reason: str) -> str:
    """A fresh serve_id for one item served to `user_id` for `reason` ([a-z0-9_-], ≤32)."""
    token = secrets.token_hex(6)
    return f"{reason}.{token}.{_sig(user_id, reason, token)}"


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
