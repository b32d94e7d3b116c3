from django.urls import path

from . import apis

urlpatterns = [
    path("posts/<uuid:post_id>/remix", apis.RemixApi.as_view()),
    path("posts/<uuid:post_id>/remixes", apis.RemixesApi.as_view()),
    path("posts/<uuid:post_id>/lineage", apis.LineageApi.as_view()),
    path("posts/<uuid:post_id>/tree", apis.TreeApi.as_view()),
]
