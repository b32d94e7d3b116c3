"""The admin sign-in page, throttled.

`config/urls.py` routes `/admin/login/` here ahead of the admin site's own URLs; the page
itself is still `admin.site.login` (CSRF, templates, `next` handling unchanged). Staff
passwords open the moderation console, so guessing them is limited per client address and per
account (`THROTTLE_ADMIN_LOGIN`, default 10/min each).
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from .throttles import admin_login_refusal


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    if request.method == "POST":
        refusal = admin_login_refusal(request)
        if refusal is not None:
            return refusal
    return admin.site.login(request, extra_context)
