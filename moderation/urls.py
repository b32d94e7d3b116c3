from django.urls import path

from . import apis

urlpatterns = [
    path("reports", apis.ReportsApi.as_view()),
    path("me/reports", apis.MyReportsApi.as_view()),
    path("moderation/reports", apis.QueueApi.as_view()),
    path("moderation/reports/<uuid:ticket_id>/assign", apis.AssignApi.as_view()),
    path("moderation/subjects/<str:subject_type>/<str:subject_id>", apis.SubjectApi.as_view()),
    path("moderation/events", apis.EventsApi.as_view()),
    path("moderation/appeals", apis.PendingAppealsApi.as_view()),
    path("moderation/appeals/<uuid:appeal_id>/approve", apis.AppealApproveApi.as_view()),
    path("moderation/appeals/<uuid:appeal_id>/reject", apis.AppealRejectApi.as_view()),
    path("appeals", apis.AppealsApi.as_view()),
    path("moderation/videos/<uuid:video_id>/release", apis.HeldReleaseApi.as_view()),
]
