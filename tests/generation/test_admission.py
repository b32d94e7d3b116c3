"""POST /generations: every refusal, idempotency, quota, and what a refused request leaves."""

import pytest
from django.db import connection

from accounts.models import Block
from cameos.models import Audience, Cameo, CameoGrant
from generation.models import Generation, GenerationCameo
from moderation.models import SafetyRule
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import assert_error, race

pytestmark = pytest.mark.django_db


def post(client, body, **headers):
    return client.post("/api/v1/generations", body, format="json", **headers)


def test_admits_with_own_and_granted_cameos(
    api, user, other, active_cameo, django_capture_on_commit_callbacks
):
    mine = active_cameo(user, handle="my.clock")
    theirs = active_cameo(other, handle="bobs.cat")
    CameoGrant.objects.create(cameo=theirs, user=user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(
            api, {"prompt": "@my.clock chases @bobs.cat", "seconds": 2, "aspect": "1:1", "seed": 7}
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["progress"] == 0
    assert (
        body["seed"] == 7
        and body["aspect"] == "1:1"
        and body["video"] is None
        and body["error"] is None
    )
    assert body["cameos"] == [str(mine.pk), str(theirs.pk)]
    # Dispatch happens only after commit (the other callback: feed's card state, its owner's
    # last creation).
    assert sorted(c.__qualname__.split(".")[0] for c in callbacks) == [
        "dispatch_after_commit",
        "on_generation_admitted",
    ]
    links = GenerationCameo.objects.filter(generation_id=body["id"]).order_by("position")
    assert [link.instructions_version for link in links] == [1, 1]


@pytest.mark.parametrize("relation", ["stranger", "blocked", "revoked", "unknown"])
def test_cameo_refusals_leave_nothing(api, user, other, active_cameo, relation):
    cameo = active_cameo(other, handle="bobs.cat")
    cameo_id = cameo.pk
    if relation == "blocked":
        CameoGrant.objects.create(cameo=cameo, user=user)
        Block.objects.create(blocker=other, blocked=user)
    elif relation == "revoked":
        CameoGrant.objects.create(cameo=cameo, user=user)
        cameo.status = "revoked"
        cameo.save()
    elif relation == "unknown":
        import uuid

        cameo_id = uuid.uuid4()
    assert_error(
        post(api, {"prompt": "a dance", "cameos": [str(cameo_id)]}), 403, "cameo_permission_denied"
    )
    assert Generation.objects.count() == 0


def test_handle_in_prompt_resolves_only_usable_cameos(api, user, other, active_cameo):
    """A forbidden @handle and an unknown one answer alike (no probing which handles exist),
    and neither puts a likeness in the video: both stay plain text."""
    theirs = active_cameo(other, handle="bobs.cat")
    forbidden = post(api, {"prompt": "@BOBS.CAT dances"})
    unknown = post(api, {"prompt": "@nobody.here dances"})
    assert forbidden.status_code == unknown.status_code == 202
    assert forbidden.json()["cameos"] == unknown.json()["cameos"] == []
    assert not GenerationCameo.objects.filter(cameo=theirs).exists()
    # Once allowed, the same handle resolves to the cameo.
    Cameo.objects.filter(pk=theirs.pk).update(audience=Audience.EVERYONE)
    allowed = post(api, {"prompt": "@bobs.cat dances"})
    assert allowed.status_code == 202
    assert allowed.json()["cameos"] == [str(theirs.pk)]


def test_anonymous(anon):
    assert_error(post(anon, {"prompt": "x"}), 401, "not_authenticated")


def test_safety_rules(api, user, teen_birth_date):
    SafetyRule.objects.create(name="gore", pattern="gore", message="No gore.")
    SafetyRule.objects.create(name="teen", pattern=r"horror\w*", kind="regex", teens_only=True)
    error = assert_error(post(api, {"prompt": "lots of GORE here"}), 403, "content_policy")
    assert error["message"] == "No gore."
    assert post(api, {"prompt": "a gorey? no: gorefree words pass"}).status_code == 202
    assert post(api, {"prompt": "horrorshow"}).status_code == 202
    teen = client_for(UserFactory(username="teen", birth_date=teen_birth_date))
    assert_error(post(teen, {"prompt": "horrorshow"}), 403, "content_policy")
    assert Generation.objects.count() == 2


def test_quota(api, user, settings, teen_birth_date):
    settings.RIFF_DAILY_QUOTA = 2
    assert post(api, {"prompt": "one"}).status_code == 202
    assert post(api, {"prompt": "two"}).status_code == 202
    response = post(api, {"prompt": "three"})
    assert_error(response, 429, "quota_exceeded")
    assert 0 < int(response["Retry-After"]) <= 86400
    assert Generation.objects.filter(owner=user).count() == 2


SEEN_IN_TRANSACTION: list[bool] = []


def record_transaction(**_) -> None:
    SEEN_IN_TRANSACTION.append(connection.in_atomic_block)


@pytest.mark.django_db(transaction=True)
def test_admission_runs_in_one_transaction(settings):
    """The quota lock holds until the job's INSERT only inside a transaction: the checks see
    one open (a decorator once slid onto the wrong function and admission ran in autocommit,
    its `FOR UPDATE` released as soon as it was taken)."""
    settings.RIFF_HOOKS = {
        **settings.RIFF_HOOKS,
        "admission.check": [
            *settings.RIFF_HOOKS["admission.check"],
            f"{__name__}.record_transaction",
        ],
    }
    SEEN_IN_TRANSACTION.clear()
    api = client_for(UserFactory(username="in.one.go"))
    assert post(api, {"prompt": "one"}).status_code == 202
    assert SEEN_IN_TRANSACTION == [True]


@pytest.mark.django_db(transaction=True)
def test_concurrent_admissions_never_exceed_the_quota(settings):
    settings.RIFF_DAILY_QUOTA = 2
    user = UserFactory(username="quota.racer")
    clients = [client_for(user) for _ in range(6)]
    results = race(6, lambda i: post(clients[i], {"prompt": f"race {i}"}).status_code)
    assert sorted(results) == [202, 202, 429, 429, 429, 429]
    assert Generation.objects.filter(owner=user).count() == 2


@pytest.mark.parametrize(
    "body,field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 1001}, "prompt"),
        ({"prompt": "x", "seconds": 0}, "seconds"),
        ({"prompt": "x", "aspect": "4:3"}, "aspect"),
        ({"prompt": "x", "cameos": ["not-a-uuid"]}, "cameos.0"),
        ({"prompt": "x", "cameos": [1]}, "cameos.0"),
        ({"prompt": 5}, "prompt"),
    ],
)
def test_validation(api, body, field):
    assert_error(post(api, body), 400, "invalid", field)
    assert Generation.objects.count() == 0


def test_idempotency_replay_mismatch(api):
    first = post(api, {"prompt": "a cat"}, HTTP_IDEMPOTENCY_KEY="k1")
    again = post(api, {"prompt": "a cat"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert_error(
        post(api, {"prompt": "a dog"}, HTTP_IDEMPOTENCY_KEY="k1"), 422, "idempotency_mismatch"
    )
    assert Generation.objects.count() == 1
    # Keys are per caller: another user's k1 is a different request.
    assert (
        post(client_for(UserFactory()), {"prompt": "a dog"}, HTTP_IDEMPOTENCY_KEY="k1").status_code
        == 202
    )
    assert Generation.objects.count() == 2


def test_idempotency_replays_refusals_too(api, other, active_cameo):
    cameo = active_cameo(other)
    body = {"prompt": "x", "cameos": [str(cameo.pk)]}
    assert post(api, body, HTTP_IDEMPOTENCY_KEY="r").status_code == 403
    CameoGrant.objects.create(cameo=cameo, user=api.user)
    assert post(api, body, HTTP_IDEMPOTENCY_KEY="r").status_code == 403  # the first answer stands
    assert post(api, body, HTTP_IDEMPOTENCY_KEY="r2").status_code == 202


def test_bad_idempotency_key(api):
    assert_error(post(api, {"prompt": "x"}, HTTP_IDEMPOTENCY_KEY="k" * 256), 400, "invalid")


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_posts_make_one_job():
    user = UserFactory(username="racer")
    clients = [client_for(user) for _ in range(6)]
    results = race(
        6, lambda i: post(clients[i], {"prompt": "same"}, HTTP_IDEMPOTENCY_KEY="same-key")
    )
    codes = sorted(r.status_code for r in results)
    assert set(codes) <= {202, 409} and codes.count(202) >= 1
    assert Generation.objects.filter(owner=user).count() == 1
    ids = {r.json()["id"] for r in results if r.status_code == 202}
    assert len(ids) == 1


@pytest.mark.parametrize(
    "backend,options,fresh,in_remix",
    [
        ("remote", {"base_url": "https://gpu.example.org/v1"}, False, False),
        ("diffusers", {"family": "wan", "path": "/models/wan"}, False, False),
        ("diffusers", {"family": "wan", "path": "/m/t2v", "i2v_path": "/m/i2v"}, True, False),
        ("riff-world", {"config": "tiny", "weights": None}, True, True),
    ],
)
def test_an_engine_that_cannot_take_a_cameo_refuses_it_at_admission(
    settings, api, user, active_cameo, make_post, backend, options, fresh, in_remix
):
    """The configured engine decides: a text-only model, a remote server (a likeness never
    leaves this Riff) or an image-to-video model asked to continue another clip refuse cameos
    with 400 `cameo_unsupported` before anything is queued, not after a wasted job."""
    from generation.engine.backends import register_engine

    register_engine("under-test", backend, **options)
    settings.RIFF_ENGINE = "under-test"
    active_cameo(user, handle="my.clock")
    parent = make_post(user)
    for body, allowed in (
        ({"prompt": "@my.clock dances"}, fresh),
        ({"prompt": "@my.clock dances", "remix_of": str(parent.pk)}, in_remix),
        ({"prompt": "a ball dances"}, True),  # no cameo: any engine
    ):
        before = Generation.objects.count()
        response = post(api, body)
        if allowed:
            assert response.status_code == 202, response.json()
            assert Generation.objects.get(pk=response.json()["id"]).model == "under-test"
        else:
            error = assert_error(response, 400, "cameo_unsupported")
            assert "under-test engine can't put a cameo" in error["message"]
            assert Generation.objects.count() == before
