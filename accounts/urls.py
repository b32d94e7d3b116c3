from django.urls import path

from . import apis

urlpatterns = [
    path("auth/register", apis.RegisterApi.as_view()),
    path("auth/login", apis.LoginApi.as_view()),
    path("auth/logout", apis.LogoutApi.as_view()),
    path("auth/logout-all", apis.LogoutAllApi.as_view()),
    path("me", apis.MeApi.as_view()),
    path("me/avatar", apis.AvatarApi.as_view()),
    path("me/invites", apis.InvitesApi.as_view()),
    path("me/api-keys", apis.ApiKeysApi.as_view()),
    path("me/api-keys/<uuid:key_id>", apis.ApiKeyApi.as_view()),
    path("users/<str:username>", apis.ProfileApi.as_view()),
    path("users/<str:username>/follow", apis.FollowApi.as_view()),
    path("users/<str:username>/block", apis.BlockApi.as_view()),
    path("users/<str:username>/followers", apis.FollowersApi.as_view()),
    path("users/<str:username>/following", apis.FollowingApi.as_view()),
    path("notifications", apis.NotificationsApi.as_view()),
    path("notifications/read", apis.NotificationsReadApi.as_view()),
    path("realtime/ticket", apis.RealtimeTicketApi.as_view()),
]
