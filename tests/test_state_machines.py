"""Every state machine refuses every transition its table does not list, through its one
transition service, and leaves the row as it was (config.core.states)."""

from __future__ import annotations

import itertools

import pytest

from cameos.models import AccessRequest, AccessRequestStatus, Cameo, CameoEvent
from cameos.services import (
    ACCESS_REQUEST_STATES,
    CAMEO_STATES,
    access_request_transition,
    cameo_transition,
)
from config.core.errors import Conflict
from config.core.states import StateMachine
from feed.models import Post
from feed.services import POST_STATES, post_transition
from generation.models import Generation, GenerationStatus, Video, WebhookDelivery, WebhookEndpoint
from generation.services.jobs import JOB_STATES, generation_claim, generation_transition
from generation.services.videos import VIDEO_STATES, video_transition
from generation.webhooks.delivery import DELIVERY_STATES, webhook_delivery_transition
from rights.claims import CLAIM_STATES
from rights.models import Claim, Payout
from rights.payouts import PAYOUT_STATES

pytestmark = pytest.mark.django_db


def illegal(machine: StateMachine) -> list[tuple[str, str]]:
    return [(a, b) for a, b in itertools.product(machine.states, repeat=2) if not machine.can(a, b)]


def test_every_machine_covers_its_model_choices():
    for machine, model, field in [
        (CAMEO_STATES, Cameo, "status"),
        (ACCESS_REQUEST_STATES, AccessRequest, "status"),
        (JOB_STATES, Generation, "status"),
        (VIDEO_STATES, Video, "state"),
        (POST_STATES, Post, "state"),
        (CLAIM_STATES, Claim, "status"),
        (PAYOUT_STATES, Payout, "status"),
        (DELIVERY_STATES, WebhookDelivery, "state"),
    ]:
        values = {value for value, _ in model._meta.get_field(field).choices}
        assert set(machine.states) == values, machine.name


@pytest.mark.parametrize(("current", "to"), illegal(CAMEO_STATES))
def test_cameo_refuses(user, active_cameo, current, to):
    cameo = active_cameo(user)
    Cameo.objects.filter(pk=cameo.pk).update(status=current)
    with pytest.raises(Conflict) as refused:
        cameo_transition(cameo=cameo, to=to)
    assert refused.value.code == "invalid_transition"
    assert Cameo.objects.get(pk=cameo.pk).status == current
    assert not CameoEvent.objects.filter(cameo=cameo).exists()


@pytest.mark.parametrize(("current", "to"), illegal(ACCESS_REQUEST_STATES))
def test_access_request_refuses(user, other, active_cameo, current, to):
    request = AccessRequest.objects.create(
        cameo=active_cameo(user), requester=other, status=current
    )
    with pytest.raises(Conflict):
        access_request_transition(request=request, to=to, actor=user)
    assert AccessRequest.objects.get(pk=request.pk).status == current


@pytest.mark.parametrize(("current", "to"), illegal(JOB_STATES))
def test_generation_refuses(user, current, to):
    job = Generation.objects.create(owner=user, prompt="p", seed=1, status=current)
    with pytest.raises(Conflict):
        generation_transition(generation=job, to=to)
    assert Generation.objects.get(pk=job.pk).status == current


@pytest.mark.parametrize("current", [s for s in JOB_STATES.states if s != GenerationStatus.QUEUED])
def test_a_claim_takes_only_a_queued_job(user, current):
    job = Generation.objects.create(owner=user, prompt="p", seed=1, status=current)
    assert generation_claim(generation_id=job.pk) is None
    assert Generation.objects.get(pk=job.pk).status == current
    assert Generation.objects.get(pk=job.pk).attempts == 0


@pytest.mark.parametrize(("current", "to"), illegal(VIDEO_STATES))
def test_video_refuses(user, make_video_row, current, to):
    video = make_video_row(user, state=current)
    with pytest.raises(Conflict):
        video_transition(video=video, to=to)
    assert Video.objects.get(pk=video.pk).state == current


@pytest.mark.parametrize(("current", "to"), illegal(POST_STATES))
def test_post_refuses(user, make_post, current, to):
    post = make_post(user)
    Post.objects.filter(pk=post.pk).update(state=current)
    post.refresh_from_db()
    with pytest.raises(Conflict):
        post_transition(post=post, to=to)
    assert Post.objects.get(pk=post.pk).state == current


@pytest.mark.parametrize(("current", "to"), illegal(DELIVERY_STATES))
def test_webhook_delivery_refuses(user, current, to):
    endpoint = WebhookEndpoint.objects.create(
        user=user, url="https://hooks.example/h", events=["video.failed"], secret="whsec_AAAA"
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id="evt_1", event_type="video.failed", payload={}, state=current
    )
    with pytest.raises(Conflict) as refused:
        webhook_delivery_transition(delivery=delivery, to=to, attempts=9)
    assert refused.value.code == "invalid_transition"
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert (row.state, row.attempts) == (current, 0)


def test_bulk_moves_only_rows_the_table_allows(user, other, active_cameo):
    cameo = active_cameo(user)
    rows = {
        status: AccessRequest.objects.create(cameo=cameo, requester=make, status=status)
        for status, make in zip(
            [AccessRequestStatus.PENDING, AccessRequestStatus.DENIED], [other, user], strict=True
        )
    }
    moved = ACCESS_REQUEST_STATES.bulk(
        AccessRequest.objects.filter(cameo=cameo), AccessRequestStatus.CANCELLED
    )
    assert moved == 1
    assert AccessRequest.objects.get(pk=rows["pending"].pk).status == "cancelled"
    assert AccessRequest.objects.get(pk=rows["denied"].pk).status == "denied"


@pytest.mark.parametrize(("current", "to"), illegal(CLAIM_STATES))
def test_claim_refuses(user, make_user, make_post, current, to):
    from rights.catalogue import AssetMatch, asset_create, holder_create
    from rights.claims import claim_transition, claims_record

    member = make_user(username="member")
    holder = holder_create(name="Machine Studios", members=[member])
    asset = asset_create(
        holder=holder, actor=member, data={"name": "Gear Kid", "policy": "licensed", "share_bps": 1}
    )
    post = make_post(user)
    (claim,) = claims_record(
        video_id=post.video_id, owner=user, matches=[AssetMatch(asset, "alias", "x", "prompt")]
    )
    Claim.objects.filter(pk=claim.pk).update(status=current)
    actor = user if to == "disputed" else member  # whoever could make that move at all
    with pytest.raises(Conflict) as refused:
        claim_transition(claim=claim, to=to, actor=actor, reason="because")
    assert refused.value.code == "invalid_transition"
    assert Claim.objects.get(pk=claim.pk).status == current
    assert Claim.objects.get(pk=claim.pk).dispute_reason == ""
