from django.urls import path

from . import views

app_name = "console"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("bulk/acknowledge", views.bulk_acknowledge, name="bulk_acknowledge"),
    path("reports/<uuid:ticket_id>", views.report, name="report"),
    path("reports/<uuid:ticket_id>/act", views.act, name="act"),
    path("reports/<uuid:ticket_id>/assign", views.assign, name="assign"),
    path("appeals", views.appeals, name="appeals"),
    path("appeals/<uuid:appeal_id>/decide", views.appeal_decision, name="appeal_decision"),
    path("dashboard", views.dashboard, name="dashboard"),
    path("media/videos/<uuid:video_id>/<str:variant>", views.media, name="media"),
]
