"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A secret is `whsec_` followed by the base64 of random bytes; the HMAC key is those bytes. A
message is signed as HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.{body}"` and sent as
`webhook-signature: v1,<base64 digest>`; several signatures (the new and the previous secret
during a rotation) are separated by spaces, and a receiver accepts the message when any one
verifies. Receivers check signatures with the spec's libraries (`standardwebhooks` and its
ports), which is how the tests check these.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from secrets import token_bytes

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
# The spec asks for 24 to 64 bytes of key.
SECRET_BYTES = 32
VERSION = "v1"


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret. Raises ValueError for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(*, secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated."""
    return " ".join(
        sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets
    )
