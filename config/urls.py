from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from accounts.admin_login import admin_login

from .core.errors import api_not_found
from .core.media import public_media
from .health import healthz, readyz
from .observability import metrics_view

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("cameos.urls")),
    path("", include("generation.urls")),
    path("", include("feed.urls")),
    path("", include("remix.urls")),
    path("", include("rights.urls")),
    path("", include("moderation.urls")),
]

urlpatterns = [
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics_view),
    # Ahead of the admin's own URLs: the same login page, with a throttle in front.
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("console/", include("moderation.console.urls")),
    path("api/v1/", include(api_v1)),
    # The OpenAI-compatible Videos API (API keys; docs/videos-api.md).
    path("v1/", include("generation.videos_api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI and ReDoc load only this server's static files (drf-spectacular-sidecar), so
    # the docs work offline and behind a strict firewall.
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

if settings.RIFF_SERVE_MEDIA and settings.STORAGE_BACKEND == "filesystem":
    # Single-box installs serve the public media prefixes (avatars) from Django; recordings,
    # reference frames and videos are never plain files (config.core.media, docs/operations.md).
    urlpatterns.append(re_path(rf"^{settings.MEDIA_URL.lstrip('/')}(?P<path>.*)$", public_media))

# Last: under the API prefixes, whatever no route above matched is the JSON envelope's 404,
# DEBUG or not (config.core.errors.api_not_found).
urlpatterns += [re_path(r"^api/", api_not_found), re_path(r"^v1/", api_not_found)]

handler400 = "config.core.errors.json_400"
handler403 = "config.core.errors.json_403"
handler404 = "config.core.errors.json_404"
handler500 = "config.core.errors.json_500"
