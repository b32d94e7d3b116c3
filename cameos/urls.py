from django.urls import path

from . import apis

urlpatterns = [
    path("cameos", apis.CameosApi.as_view()),
    path("cameos/<uuid:cameo_id>", apis.CameoApi.as_view()),
    path("cameos/<uuid:cameo_id>/recording", apis.RecordingApi.as_view()),
    path("cameos/<uuid:cameo_id>/access-requests", apis.AccessRequestsApi.as_view()),
    path(
        "cameos/<uuid:cameo_id>/access-requests/<uuid:request_id>/approve",
        apis.ApproveApi.as_view(),
    ),
    path("cameos/<uuid:cameo_id>/access-requests/<uuid:request_id>/deny", apis.DenyApi.as_view()),
    path("cameos/<uuid:cameo_id>/grants", apis.GrantsApi.as_view()),
    path("cameos/<uuid:cameo_id>/grants/<str:username>", apis.GrantApi.as_view()),
]
