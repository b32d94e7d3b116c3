"""Issue #29 end to end, through HTTP and a real worker: a holder registers a blocked and a
licensed character; the blocked one is refused (by name at admission, by description on the
worker); the licensed one is generated, posted and remixed twice; a revenue event on the
deepest remix pays the holder, the cameo owner, both ancestors, the creator and the platform to
the micro, and `/me/earnings` shows it."""

from __future__ import annotations

import pytest

from cameos.models import Audience, Cameo
from generation.models import Generation, Video
from rights.checks import ledger_problems
from tests.conftest import client_for
from tests.e2e.test_cameo_verification import wait_for
from tests.helpers import assert_error
from tests.rights.conftest import COMET, MOTH

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finish(job_id: str) -> Generation:
    assert wait_for(
        lambda: Generation.objects.get(pk=job_id).status in ("succeeded", "failed"), 180
    )
    return Generation.objects.get(pk=job_id)


def generate(client, path: str, body: dict) -> Video:
    response = client.post(path, body, format="json")
    assert response.status_code == 202, response.content
    job = finish(response.json()["id"])
    assert job.status == "succeeded", job.error_message
    return Video.objects.get(generation=job)


def publish(client, video: Video) -> str:
    response = client.post("/api/v1/posts", {"video_id": str(video.pk)}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_licensed_character_pays_everyone_down_a_remix_chain(
    celery_worker, make_user, active_cameo
):
    users = {n: make_user(username=n) for n in ("boss", "ana", "gina", "paul", "carl", "mia")}
    users["boss"].is_staff = True
    users["boss"].save(update_fields=["is_staff"])
    staff, ana = client_for(users["boss"]), client_for(users["ana"])
    gina, paul, carl = (client_for(users[n]) for n in ("gina", "paul", "carl"))

    # The holder and its two characters, through the API.
    holder = staff.post(
        "/api/v1/rights/holders", {"name": "Orbit Studios", "members": ["ana"]}, format="json"
    ).json()["id"]
    for terms in (COMET, MOTH):
        created = ana.post("/api/v1/rights/assets", {"holder_id": holder, **terms}, format="json")
        assert created.status_code == 201, created.content

    # Blocked by name (obfuscated): refused at admission, nothing made.
    refused = gina.post("/api/v1/generations", {"prompt": "C4pt@in  Comet's race"}, format="json")
    assert_error(refused, 403, "ip_blocked", "prompt")
    # Blocked by description alone: admitted, then refused by the worker's semantic check.
    described = gina.post(
        "/api/v1/generations",
        {
            "prompt": "a teenage space pilot in a silver flight suit with a glowing orange comet "
            "emblem rides a jet-powered skateboard between asteroids"
        },
        format="json",
    )
    assert described.status_code == 202, described.content
    job = finish(described.json()["id"])
    assert (job.status, job.error_code) == ("failed", "ip_blocked")
    assert "Captain Comet" in job.error_message
    assert not Video.objects.filter(generation=job).exists()
    # The check endpoint shows the same decision without generating (the worker answers).
    check = gina.get("/api/v1/rights/check", {"prompt": described.json()["prompt"]}).json()
    assert check["decision"] == "blocked" and check["semantic"] is True
    assert [(m["asset"]["name"], m["via"]) for m in check["matches"]] == [
        ("Captain Comet", "semantic")
    ]

    # Licensed: generated with mia's monetised cameo, posted, remixed twice.
    cameo = active_cameo(users["mia"], audience=Audience.EVERYONE, handle="mia.face")
    Cameo.objects.filter(pk=cameo.pk).update(monetization_enabled=True)
    root = generate(gina, "/api/v1/generations", {"prompt": "Madame Moth's bakery with @mia.face"})
    root_post = publish(gina, root)
    (claim,) = gina.get(f"/api/v1/videos/{root.pk}/claims").json()["results"]
    assert (claim["asset"]["name"], claim["via"], claim["policy_version"]) == (
        "Moth Lady",
        "alias",
        1,
    )
    middle = generate(paul, f"/api/v1/posts/{root_post}/remix", {"prompt": "at dawn"})
    middle_post = publish(paul, middle)
    deepest = generate(carl, f"/api/v1/posts/{middle_post}/remix", {"prompt": "in the rain"})
    deepest_post = publish(carl, deepest)
    # The remixes show the character too: they inherit the claim.
    (inherited,) = carl.get(f"/api/v1/videos/{deepest.pk}/claims").json()["results"]
    assert (inherited["asset"]["name"], inherited["via"]) == ("Moth Lady", "remix")

    response = staff.post(
        "/api/v1/revenue/events",
        {"source": "ads", "post_id": deepest_post, "amount_micros": 10_000_000, "currency": "USD"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="ads-1",
    )
    assert response.status_code == 201, response.content
    paid = {(s["role"], s["party"]["id"]): s["amount_micros"] for s in response.json()["splits"]}
    uid = {n: str(u.pk) for n, u in users.items()}
    # platform 20 %; Moth Lady 15 % of the net 8,000,000; mia's cameo 10 % of what is left
    # (6,800,000); the rest R = 6,120,000: carl R·0.8, paul R·0.2·0.8, gina R·0.2².
    assert paid == {
        ("platform", None): 2_000_000,
        ("ip", holder): 1_200_000,
        ("cameo", uid["mia"]): 680_000,
        ("ancestor", uid["paul"]): 979_200,
        ("ancestor", uid["gina"]): 244_800,
        ("creator", uid["carl"]): 4_896_000,
    }
    assert sum(paid.values()) == 10_000_000
    for name, amount in (
        ("mia", 680_000),
        ("paul", 979_200),
        ("gina", 244_800),
        ("carl", 4_896_000),
    ):
        balances = client_for(users[name]).get("/api/v1/me/earnings").json()["balances"]
        assert balances == [{"currency": "USD", "available_micros": amount, "pending_micros": 0}]
    statement = ana.get(f"/api/v1/rights/holders/{holder}/statement").json()
    assert statement["totals"][0]["closing_micros"] == 1_200_000
    assert ledger_problems() == []
