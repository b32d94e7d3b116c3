"""Media URLs: what may be fetched without a bearer token, and for how long.

Nothing under MEDIA_ROOT is public by default. Two kinds of URL reach files:

- public prefixes (`RIFF_PUBLIC_MEDIA_PREFIXES`, avatars only by default) are served as plain
  files when Django serves media at all; cameo recordings and reference frames never are;
- everything else is served by an API view that checks who asks, and may hand out a signed,
  expiring URL (`signed_query`) that authorises exactly one path until its expiry, for players
  that can't send an Authorization header. Expiry is rounded up to half the lifetime, so a URL
  stays the same across requests for a while and clients can cache it.
"""

from __future__ import annotations

import functools
import posixpath
import time

from django.conf import settings
from django.http import Http404
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.static import serve

from .files import streamed

_SALT = "riff.media.url"


def _signature(path: str, expires: int) -> str:
    return _signature_for(path, expires, settings.SECRET_KEY)


# A feed page signs three URLs per post, and the same post goes to many viewers within one
# expiry step: the signatures of recent (path, expiry) pairs are kept, per secret.
@functools.lru_cache(maxsize=65536)
def _signature_for(path: str, expires: int, secret: str) -> str:
    message = f"{path}\n{expires}"
    return salted_hmac(_SALT, message, secret=secret, algorithm="sha256").hexdigest()[:40]


def signed_query(path: str, *, now: float | None = None) -> dict[str, str]:
    """`{"expires", "sig"}` query parameters that authorise `path` for RIFF_MEDIA_URL_TTL
    seconds (at least half of it, at most all of it)."""
    ttl = settings.RIFF_MEDIA_URL_TTL
    step = max(1, ttl // 2)
    expires = (int(now if now is not None else time.time()) // step + 2) * step
    return {"expires": str(expires), "sig": _signature(path, expires)}


def signature_valid(path: str, expires: str | None, sig: str | None) -> bool:
    if not expires or not sig or len(expires) > 12 or not expires.isdigit():
        return False
    if int(expires) < time.time():
        return False
    return constant_time_compare(_signature(path, int(expires)), sig)


def public_media(request, path: str):
    """Serves MEDIA_ROOT files under the public prefixes only, after normalising the path
    (so `avatars/../cameos/…` can't reach a recording)."""
    clean = posixpath.normpath(path).lstrip("/")
    if ".." in clean.split("/") or not clean.startswith(tuple(settings.RIFF_PUBLIC_MEDIA_PREFIXES)):
        raise Http404("Not found.")
    # Streamed block by block under uvicorn (config.core.files), like every other download.
    response = streamed(serve(request, clean, document_root=settings.MEDIA_ROOT))
    response["X-Content-Type-Options"] = "nosniff"
    return response
