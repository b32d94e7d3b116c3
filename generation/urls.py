from django.urls import path

from . import apis
from .webhooks import apis as webhooks

urlpatterns = [
    path("generations", apis.GenerationsApi.as_view()),
    path("generations/<uuid:generation_id>", apis.GenerationApi.as_view()),
    path("generations/<uuid:generation_id>/cancel", apis.GenerationCancelApi.as_view()),
    path("drafts", apis.DraftsApi.as_view()),
    path("videos/<uuid:video_id>", apis.VideoApi.as_view()),
    path("videos/<uuid:video_id>/content", apis.VideoContentApi.as_view()),
    path("videos/<uuid:video_id>/claims", apis.VideoClaimsApi.as_view()),
    path("cameos/<uuid:cameo_id>/appearances", apis.AppearancesApi.as_view()),
    path("cameos/<uuid:cameo_id>/appearances/<uuid:video_id>", apis.AppearanceApi.as_view()),
    path("provenance/verify", apis.ProvenanceVerifyApi.as_view()),
    path("me/webhooks", webhooks.WebhooksApi.as_view()),
    path("me/webhooks/<uuid:webhook_id>", webhooks.WebhookApi.as_view()),
    path("me/webhooks/<uuid:webhook_id>/rotate", webhooks.WebhookRotateApi.as_view()),
    path("me/webhooks/<uuid:webhook_id>/deliveries", webhooks.WebhookDeliveriesApi.as_view()),
    path(
        "me/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver",
        webhooks.WebhookRedeliverApi.as_view(),
    ),
]
