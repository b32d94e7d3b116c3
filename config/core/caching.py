"""`Cache-Control: no-store` on every `/api/v1/` response that does not set its own.

Everything under /api/v1 is either a bearer token (register, login) or data scoped to the
caller (profile, drafts, feed, notifications), so no shared cache or browser disk may keep it.
A view that knows better sets the header itself and is left alone (the video bytes at
`/videos/{id}/content` are `private, max-age=3600`). Health probes, the schema, static files
and public media are outside /api/v1 and untouched.
"""

from __future__ import annotations

API_PREFIX = "/api/v1/"


class ApiNoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX) and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response
