from django.urls import path

from . import apis

urlpatterns = [
    path("revenue/events", apis.RevenueEventsApi.as_view()),
    path("revenue/trial-balance", apis.TrialBalanceApi.as_view()),
    path("me/earnings", apis.EarningsApi.as_view()),
    path("me/credits", apis.CreditsApi.as_view()),
    path("me/payouts", apis.PayoutsApi.as_view()),
    path("credits/grants", apis.CreditGrantsApi.as_view()),
]
