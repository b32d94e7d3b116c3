from django.urls import path

from . import apis

urlpatterns = [
    path("rights/holders", apis.HoldersApi.as_view()),
    path("rights/holders/<uuid:holder_id>", apis.HolderApi.as_view()),
    path("rights/holders/<uuid:holder_id>/members", apis.HolderMembersApi.as_view()),
    path("rights/holders/<uuid:holder_id>/members/<str:username>", apis.HolderMemberApi.as_view()),
    path("rights/holders/<uuid:holder_id>/claims", apis.HolderClaimsApi.as_view()),
    path("rights/holders/<uuid:holder_id>/statement", apis.StatementApi.as_view()),
    path("rights/assets", apis.AssetsApi.as_view()),
    path("rights/assets/<uuid:asset_id>", apis.AssetApi.as_view()),
    path("rights/check", apis.CheckApi.as_view()),
    path("claims/<uuid:claim_id>/dispute", apis.ClaimDisputeApi.as_view()),
    path("claims/<uuid:claim_id>/uphold", apis.ClaimUpholdApi.as_view()),
    path("claims/<uuid:claim_id>/release", apis.ClaimReleaseApi.as_view()),
    path("revenue/events", apis.RevenueEventsApi.as_view()),
    path("revenue/trial-balance", apis.TrialBalanceApi.as_view()),
    path("me/earnings", apis.EarningsApi.as_view()),
    path("me/credits", apis.CreditsApi.as_view()),
    path("me/payouts", apis.PayoutsApi.as_view()),
    path("credits/grants", apis.CreditGrantsApi.as_view()),
]
