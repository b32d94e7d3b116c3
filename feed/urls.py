from django.urls import path

from . import apis

urlpatterns = [
    path("posts", apis.PostsApi.as_view()),
    path("posts/<uuid:post_id>", apis.PostApi.as_view()),
    path("posts/<uuid:post_id>/like", apis.LikeApi.as_view()),
    path("posts/<uuid:post_id>/comments", apis.CommentsApi.as_view()),
    # Under accounts' /users/ prefix, but served here: accounts sits below feed.
    path("users/<str:username>/posts", apis.UserPostsApi.as_view()),
    path("feed", apis.FeedApi.as_view()),
    path("feed/events", apis.FeedEventsApi.as_view()),
    path("feed/preferences", apis.FeedPreferencesApi.as_view()),
    path("metrics/creation", apis.CreationMetricsApi.as_view()),
]
