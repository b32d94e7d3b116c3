"""The pages a browser signs in to, and the middleware only they need.

Sessions, the session's `request.user` and flash messages serve the Django admin and the
moderation console (`SITE_PREFIXES`): the pages that sign in with a session cookie. Nothing
else reads them. The API authenticates with bearer tokens and API keys (DRF sets `request.user`
itself), and probes, metrics and media read no user at all. So every other request skips these
three middlewares: Django's own classes, subclassed here so that the admin's system checks
still find them, each answering only for site paths: about 30 µs of a `GET /me` in process
(docs/bench-feed.md), on every API request.

CSRF stays Django's own middleware, on every path: `check --deploy` asks for exactly that
class (security.W003), and on API paths it only reads a cookie (DRF's views are exempt).
"""

from __future__ import annotations

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions

SITE_PREFIXES = ("/admin/", "/console/")


def is_site(request) -> bool:
    return request.path_info.startswith(SITE_PREFIXES)


class _SiteOnly:
    def __call__(self, request):
        if not is_site(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_SiteOnly, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(_SiteOnly, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(_SiteOnly, messages.MessageMiddleware):
    pass
