"""Generation credits on the rights ledger (#29): beyond the daily quota a generation spends
one credit; a failed or cancelled one gets it back exactly once."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from generation.models import Generation, GenerationStatus
from generation.services.jobs import generation_transition
from rights.models import Transfer
from rights.selectors import credits_balance
from rights.services import credits_grant
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def generate(api, prompt="p"):
    return api.post("/api/v1/generations", {"prompt": prompt}, format="json")


def test_credits_pay_beyond_the_quota_and_come_back_once(api, user, settings):
    settings.RIFF_DAILY_QUOTA = 1
    assert generate(api).status_code == 202
    assert_error(generate(api), 429, "quota_exceeded")
    assert Generation.objects.filter(owner=user).count() == 1
    assert Transfer.objects.filter(kind="credit_spend").count() == 0

    credits_grant(user=user, credits=2, key="purchase-1")
    paid = generate(api)
    assert paid.status_code == 202, paid.content
    assert credits_balance(user=user) == 1
    failed = generate(api)
    assert failed.status_code == 202
    assert credits_balance(user=user) == 0
    assert_error(generate(api), 429, "quota_exceeded")
    assert Generation.objects.filter(owner=user).count() == 3

    # Cancelled: the credit comes back, once.
    assert api.post(f"/api/v1/generations/{paid.json()['id']}/cancel").status_code == 200
    assert credits_balance(user=user) == 1
    assert_error(
        api.post(f"/api/v1/generations/{paid.json()['id']}/cancel"), 409, "invalid_transition"
    )
    assert credits_balance(user=user) == 1
    # Failed: likewise.
    job = Generation.objects.get(pk=failed.json()["id"])
    generation_transition(generation=job, to=GenerationStatus.FAILED, error_code="engine_error")
    assert credits_balance(user=user) == 2
    assert Transfer.objects.filter(kind="reversal").count() == 2
    # A generation within the quota refunds nothing when it fails.
    first = Generation.objects.filter(owner=user).order_by("created_at").first()
    generation_transition(generation=first, to=GenerationStatus.CANCELLED)
    assert credits_balance(user=user) == 2
    call_command("ledger_check")  # raises SystemExit on any imbalance


def test_a_refused_request_spends_nothing(api, user, settings):
    from moderation.models import SafetyRule

    settings.RIFF_DAILY_QUOTA = 0
    SafetyRule.objects.create(name="gore", pattern="gore", message="No gore.")
    credits_grant(user=user, credits=1, key="purchase-2")
    assert_error(generate(api, "gore please"), 403, "content_policy")
    assert credits_balance(user=user) == 1
    assert not Generation.objects.exists()
