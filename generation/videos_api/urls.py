from django.urls import path

from . import apis

# Fixed paths before `videos/<id>`: `extensions`, `edits` and `characters` are not video ids.
urlpatterns = [
    path("videos", apis.VideosApi.as_view()),
    path("videos/extensions", apis.ExtensionsApi.as_view()),
    path("videos/edits", apis.EditsApi.as_view()),
    path("videos/characters", apis.CharactersApi.as_view()),
    path("videos/characters/<str:character_id>", apis.CharacterApi.as_view()),
    path("videos/<str:video_id>", apis.VideoApi.as_view()),
    path("videos/<str:video_id>/content", apis.VideoContentApi.as_view()),
    path("videos/<str:video_id>/remix", apis.VideoRemixApi.as_view()),
    path("videos/<str:video_id>/cancel", apis.VideoCancelApi.as_view()),
]
