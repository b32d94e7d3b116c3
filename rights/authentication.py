"""The service token: internal services (billing, ads) call the service endpoints with
`Authorization: Bearer <RIFF_SERVICE_TOKEN>` (docs/rights.md "Service calls")."""

from __future__ import annotations

import hmac

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication

# A shorter configured token is treated as unset: it could be guessed.
MIN_TOKEN_CHARS = 32


class ServicePrincipal:
    """The caller authenticated by the service token: not a user, not staff."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None
    username = "service"

    def __str__(self) -> str:
        return "service"


SERVICE = ServicePrincipal()


def is_service(request) -> bool:
    return isinstance(request.user, ServicePrincipal)


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    """Matches only the configured token (compared in constant time); any other bearer token
    is left to the user token authentication that follows it."""

    def authenticate(self, request):
        expected = settings.RIFF_SERVICE_TOKEN or ""
        if len(expected) < MIN_TOKEN_CHARS:
            return None
        header = authentication.get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        if hmac.compare_digest(header[1], expected.encode()):
            return SERVICE, "service"
        return None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "rights.authentication.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "RIFF_SERVICE_TOKEN"}
