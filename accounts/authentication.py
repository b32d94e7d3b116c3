from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import HTTP_HEADER_ENCODING, authentication, exceptions

from config.core.throttles import user_windows_preload

from .apikeys import API_KEY_PREFIX, api_key_lookup
from .tokens import token_authenticate


def _bearer(request, keyword: str) -> str | None:
    """The credential of `Authorization: <keyword> <credential>`, None without that header, or
    AuthenticationFailed when the header is malformed."""
    # DRF's get_authorization_header, read from META: `request.headers` builds a mapping of
    # every header to answer it.
    header = request.META.get("HTTP_AUTHORIZATION", b"")
    if isinstance(header, str):
        header = header.encode(HTTP_HEADER_ENCODING)
    header = header.split()
    if not header or header[0].lower() != keyword.encode():
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header.")
    try:
        return header[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("Malformed token.")


def _preload(request, batch, user_id):
    """What rides the token check's round trip (a `config.core.redis.Batch`): the view's own
    reads (its `preload(request, batch, user_id)`, as feed.apis.FeedApi's), then the user's
    rate-limit windows, which read the batch's last replies. Returns what takes the replies."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    own = getattr(view, "preload", None)
    takes = [
        take
        for take in (
            own(request, batch, user_id) if own is not None else None,
            user_windows_preload(request, batch, user_id),
        )
        if take is not None
    ]
    if not takes:
        return None

    def take_all(replies: list) -> None:
        for take in takes:
            take(replies)

    return take_all


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`; sets `request.auth` to the AuthToken row."""

    keyword = "bearer"

    def authenticate(self, request):
        raw = _bearer(request, self.keyword)
        if raw is None:
            return None
        if raw.startswith(API_KEY_PREFIX):
            # Keys are for integrators' servers and work only on /v1/; say so rather than
            # letting a developer wonder why a fresh key is "invalid".
            raise exceptions.AuthenticationFailed(
                "API keys work only on the Videos API at /v1/; sign in for a session token."
            )
        token = token_authenticate(
            raw, preload=lambda pipe, user_id: _preload(request, pipe, user_id)
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rk_...` for the Videos API (/v1/); sets `request.auth` to the
    ApiKey row. No header: None (the view's permissions decide); any other bearer, a session
    token included: 401."""

    keyword = "bearer"

    def authenticate(self, request):
        raw = _bearer(request, self.keyword)
        if raw is None:
            return None
        key = api_key_lookup(raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return key.user, key

    def authenticate_header(self, request):
        return 'Bearer realm="videos-api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A Videos API key (`rk_...`) from `POST /api/v1/me/api-keys`; "
            "accepted on /v1/ only.",
        }
